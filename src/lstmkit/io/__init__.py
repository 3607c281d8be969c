"""Files out and in: the model directory, and weights from and to PyTorch and Keras."""
