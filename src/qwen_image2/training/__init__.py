"""Training: the DiT trainer, the VAE trainer, stage schedules, checkpoints, parallelism."""
