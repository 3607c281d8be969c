"""docs/notebooks/lstm_from_scratch.ipynb runs from top to bottom (nbclient, a fresh kernel), is
stored without outputs, and its explanation draws itself inline."""

import json
import os
import time
from pathlib import Path

import pytest

from conftest import IMDB_LABELED

NOTEBOOK = Path(__file__).resolve().parents[1] / "docs" / "notebooks" / "lstm_from_scratch.ipynb"


def test_stored_without_outputs():
    nb = json.loads(NOTEBOOK.read_text(encoding="utf-8"))
    code = [cell for cell in nb["cells"] if cell["cell_type"] == "code"]
    assert code
    assert all(not cell["outputs"] and cell["execution_count"] is None for cell in code)


def test_runs_top_to_bottom_in_under_two_minutes():
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    if not IMDB_LABELED.exists():
        pytest.skip(f"IMDB archive not found at {IMDB_LABELED} (set LSTMKIT_IMDB)")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    env = {"LSTMKIT_IMDB": str(IMDB_LABELED.parent), "LSTMKIT_COMPILE_CACHE": "0"}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # the kernel inherits this process's environment
    try:
        start = time.monotonic()
        nbclient.NotebookClient(
            nb, timeout=110, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOK.parent)}}
        ).execute()
        seconds = time.monotonic() - start
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    assert seconds < 120, f"the notebook took {seconds:.0f} s"
    text = "".join(o.get("text", "") for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs)
    assert "nan" in text and "lstmkit tanh: [-1." in text  # the seed's tanh overflows, lstmkit's does not
    assert "right: f*c_prev + i*g = 0.846718" in text
    assert "test accuracy on 1,000 reviews: " in text
    accuracy = float(text.split("test accuracy on 1,000 reviews: ")[1].split()[0])
    assert accuracy > 0.6  # better than chance: the small model learned something
    last = nb.cells[-1].outputs[-1]
    assert "<iframe srcdoc=" in last["data"]["text/html"]  # the explanation drew itself
    images = [
        o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs if "image/png" in o.get("data", {})
    ]
    assert len(images) == 1  # the gradients through time
