"""The training core: state, optimiser, the one step, build(cfg, stage), the loop,
data entry points and evaluators. Stages (vmae2/trainers) build on it."""
