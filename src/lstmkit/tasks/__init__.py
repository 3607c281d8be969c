"""The jobs the command line runs: presets, training, self-training, pretraining, metrics, plots."""
