"""Backends: interchangeable interpreters of one quantized NIR graph (emulator, spinnaker2)."""
