"""Numpy-only readers and writers for DVS recordings (tonic's DVSGesture layout, AEDAT 3.1 + CSV, AEDAT4, npz)."""
