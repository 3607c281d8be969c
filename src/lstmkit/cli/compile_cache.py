"""The persistent XLA compile cache that the commands which compile turn on first."""

from __future__ import annotations

import os


def enable_compile_cache():
    """Keep compiled XLA code across processes, so a second `lstmkit predict` starts fast.

    LSTMKIT_COMPILE_CACHE=0 turns it off (the test suite does, to leave the user's cache alone).
    """
    import jax

    from lstmkit.paths import lstmkit_home

    if os.environ.get("LSTMKIT_COMPILE_CACHE") == "0":
        return
    jax.config.update("jax_compilation_cache_dir", str(lstmkit_home() / "jax-cache"))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
