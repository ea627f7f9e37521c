"""The VAE trainer: recipe schema, data, losses, optional PatchGAN, loop and export."""
