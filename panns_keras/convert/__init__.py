"""Checkpoint conversion: official PANNs ``.pth`` files to panns-keras model directories."""
