"""lstmkit: understand, train and use LSTM text classifiers, with every gate in view."""

from lstmkit.cell import Gates, lstm_cell, sigmoid, tanh
from lstmkit.errors import LstmkitError
from lstmkit.init import init_bidirectional, init_lstm
from lstmkit.lstm import LSTMState, bidirectional_layer, lstm_layer, lstm_stack

__all__ = [
    "Gates", "LSTMState", "LstmkitError", "bidirectional_layer", "init_bidirectional", "init_lstm",
    "lstm_cell", "lstm_layer", "lstm_stack", "sigmoid", "tanh",
]  # fmt: skip
__version__ = "0.1.0"
