"""The commands about this machine: `lstmkit info` and `lstmkit build-kernel`."""

from __future__ import annotations

import json
import os

import click

from lstmkit.errors import LstmkitError
from lstmkit.version import JSON_SCHEMA_VERSION


@click.command()
@click.option("--json", "as_json", is_flag=True, help="print one JSON object")
def info(as_json):
    """Versions, the CPU, which LSTM implementation runs here and why, and the cache folders."""
    import platform

    import jax
    import numpy as np

    from lstmkit.core import fused
    from lstmkit.paths import lstmkit_home
    from lstmkit.version import __version__

    ok, why = fused.status()
    cpu = fused.cpu_summary()
    home = lstmkit_home()
    facts = {
        "lstmkit": __version__, "python": platform.python_version(), "jax": jax.__version__, "jaxlib": jax.lib.__version__,
        "numpy": np.__version__, "backend": jax.default_backend(), "cpu": cpu["model"], "cpu_features": cpu["features"],
        "cores": os.cpu_count(), "lstm": "kernel" if ok else "jax-scan", "lstm_reason": why, "home": str(home),
        "kernel_cache": str(fused.kernel_dir()), "compile_cache": str(home / "jax-cache"), "datasets": str(home / "datasets"),
    }  # fmt: skip
    if as_json:
        click.echo(json.dumps({"schema_version": JSON_SCHEMA_VERSION, **facts}))
        return
    for key, value in facts.items():
        click.echo(f"{key:<14} {' '.join(value) if isinstance(value, list) else value}")


@click.command("build-kernel")
def build_kernel():
    """Build the fused LSTM kernel for this CPU now (else it is built on first use) and say where."""
    from lstmkit.core import fused

    ok, why = fused.status()
    if not ok:
        raise LstmkitError(f"no kernel: {why}")
    click.echo(f"ready: {why}")
