"""Flow matching: the training objective, timestep sampling and shift, inference schedules, guidance."""
