"""Training: data, loops and checkpoints that turn a search space into trained weights."""
