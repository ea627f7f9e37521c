"""Procedural training data made locally, with no download."""
