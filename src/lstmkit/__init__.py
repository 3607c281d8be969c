"""lstmkit: understand, train and use LSTM text classifiers, with every gate in view."""

import os as _os


def _direction_devices():
    """With LSTMKIT_CPU_DEVICES=2, ask XLA for two CPU devices, so a bidirectional LSTM runs its
    two directions in parallel, one per core (see `lstmkit.bptt.direction_mesh`).

    Opt-in: on an idle 2-core machine it makes the seed's training step about 1.5x faster, but
    the two devices meet at every collective, so another busy process slows it down several
    times, and computations dispatched without waiting can deadlock at a rendezvous (lstmkit's
    own loops wait for each step when it is on). It only takes effect before JAX starts its CPU
    backend, and leaves an XLA_FLAGS that already sets the device count alone.
    """
    flags = _os.environ.get("XLA_FLAGS", "")
    if _os.environ.get("LSTMKIT_CPU_DEVICES") == "2" and "xla_force_host_platform_device_count" not in flags:
        _os.environ["XLA_FLAGS"] = (flags + " --xla_force_host_platform_device_count=2").strip()


_direction_devices()

from lstmkit.cell import Gates, lstm_cell, sigmoid, tanh
from lstmkit.errors import LstmkitError
from lstmkit.init import init_bidirectional, init_lstm
from lstmkit.lstm import LSTMState, bidirectional_layer, lstm_layer, lstm_stack

__all__ = [
    "Gates", "LSTMState", "LstmkitError", "bidirectional_layer", "init_bidirectional", "init_lstm",
    "lstm_cell", "lstm_layer", "lstm_stack", "sigmoid", "tanh",
]  # fmt: skip
__version__ = "0.1.0"
