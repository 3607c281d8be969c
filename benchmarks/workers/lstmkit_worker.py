"""lstmkit worker: a stub until the lead writes it. Protocol: see ../bench_train.py.

It exits with protocol.EXIT_UNAVAILABLE, so the harness skips lstmkit with this message.
"""

import protocol

if __name__ == "__main__":
    protocol.unavailable("lstmkit worker not implemented yet")
