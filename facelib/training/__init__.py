"""Making a model: its settings, losses, and the training run."""
