"""A Keras-like model on the LSTM: layers, Sequential, optimizers, and the fit/evaluate/predict loops."""
