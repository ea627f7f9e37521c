"""Inference: one pipeline for text-to-image and editing with 0..10 condition images."""
