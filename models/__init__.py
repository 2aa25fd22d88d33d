"""s2gesture offline toolkit: datasets, synthetic gestures, the P-SNN, training, quantization, export, evaluation.

Torch, snnTorch, Brevitas and tonic are imported only inside the training-side modules, lazily.
"""
