"""What a run needs from its machine: device mesh and shardings, checkpoints,
multi-host start-up, metrics and progress, host settings. Imports nothing from
the models, stages or data."""
