"""Model layer: presets, loading and saving diffusers folders, condition encoding, latents."""
