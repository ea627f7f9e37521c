"""Evaluation: VAE reconstruction metrics, OCR text-rendering accuracy, and the human-preference arena."""
