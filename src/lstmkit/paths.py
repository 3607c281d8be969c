"""Where lstmkit keeps what it caches: LSTMKIT_HOME, default ~/.cache/lstmkit."""

from __future__ import annotations

import os
from pathlib import Path


def lstmkit_home() -> Path:
    """The cache folder: $LSTMKIT_HOME, or ~/.cache/lstmkit."""
    return Path(os.environ.get("LSTMKIT_HOME") or Path.home() / ".cache" / "lstmkit").expanduser()
