"""The DiT trainer: recipe schema, loop and validation."""
