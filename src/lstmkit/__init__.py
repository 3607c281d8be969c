"""lstmkit: understand, train and use LSTM text classifiers, with every gate in view."""

import os as _os


def _cpu_device_per_core():
    """Ask XLA for two CPU devices on a multi-core machine, so a bidirectional LSTM runs its two
    directions in parallel (see `lstmkit.bptt.direction_mesh`).

    It only takes effect if JAX has not started its CPU backend yet; LSTMKIT_CPU_DEVICES=1 or an
    XLA_FLAGS that already sets the device count leaves everything as it is.
    """
    flags = _os.environ.get("XLA_FLAGS", "")
    if _os.environ.get("LSTMKIT_CPU_DEVICES") == "1" or "xla_force_host_platform_device_count" in flags:
        return
    if (_os.cpu_count() or 1) >= 2:
        _os.environ["XLA_FLAGS"] = (flags + " --xla_force_host_platform_device_count=2").strip()


_cpu_device_per_core()

from lstmkit.cell import Gates, lstm_cell, sigmoid, tanh
from lstmkit.errors import LstmkitError
from lstmkit.init import init_bidirectional, init_lstm
from lstmkit.lstm import LSTMState, bidirectional_layer, lstm_layer, lstm_stack

__all__ = [
    "Gates", "LSTMState", "LstmkitError", "bidirectional_layer", "init_bidirectional", "init_lstm",
    "lstm_cell", "lstm_layer", "lstm_stack", "sigmoid", "tanh",
]  # fmt: skip
__version__ = "0.1.0"
