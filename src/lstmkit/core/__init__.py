"""The LSTM itself: one cell, the loops over time, their hand-written backward, the C++ kernel, initialisers."""
