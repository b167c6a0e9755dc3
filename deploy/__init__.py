"""Deployment: int8 .tflite export and TF-Lite Micro arena measurement (optional stack)."""
