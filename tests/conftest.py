"""Shared test setup: float64 on demand, the --run-slow flag, the IMDB location, and a bound on
the compiled code one test process keeps."""

import gc
import os
from pathlib import Path

import pytest

# The data that lives beside the checkout (never inside it); LSTMKIT_IMDB overrides.
IMDB_DIR = Path(
    os.environ.get("LSTMKIT_IMDB", Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "imdb")
).resolve()
IMDB_LABELED = IMDB_DIR / "aclImdb_labeled.tar.gz"
IMDB_UNSUP = IMDB_DIR / "aclImdb_unsup.tar.gz"


@pytest.fixture(autouse=True, scope="session")
def private_lstmkit_home(tmp_path_factory):
    """The suite's own LSTMKIT_HOME (downloads) and no persistent compile cache, so tests neither
    read nor fill the user's."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("LSTMKIT_HOME", str(tmp_path_factory.mktemp("lstmkit-home")))
        env.setenv("LSTMKIT_COMPILE_CACHE", "0")
        from lstmkit.core import fused

        fused.available()  # build the kernel once per process, so its one line is not in a command's output
        yield


def _memory_maps():
    """How many memory mappings this process has (Linux), or None where /proc cannot say."""
    try:
        with open("/proc/self/maps", "rb") as f:
            return sum(1 for _ in f)
    except OSError:
        return None


def _max_memory_maps():
    try:
        return int(Path("/proc/sys/vm/max_map_count").read_text())
    except (OSError, ValueError):
        return 65530  # the Linux default


@pytest.fixture(autouse=True)
def release_compiled_code():
    """Drop JAX's compiled programs once they hold a quarter of the process's memory-map limit.

    Every XLA CPU executable keeps its machine code in a few mmap'd regions, and jit caches keep
    the executables of every architecture and shape a test compiled. Models of one architecture
    now share them (keyed on the `Architecture` value, not the model object), but the suite builds
    many different architectures and shapes, so the bound stays as a guard. Before that the CLI
    tests alone left about 46,000 mappings in this one process (tests/test_model.py 10,700); with the
    rest of the suite the process passed Linux's vm.max_map_count (65,530), LLVM's next mmap
    failed ("LLVM compilation error: Cannot allocate memory") and XLA crashed in a compile. Clearing
    between tests only when the count is high keeps the compiled code that later tests reuse.
    """
    yield
    n = _memory_maps()
    if n is not None and n > _max_memory_maps() // 4:
        import jax

        gc.collect()  # models in reference cycles still hold their jitted functions
        jax.clear_caches()
        gc.collect()


def pytest_addoption(parser):
    parser.addoption(
        "--run-slow", action="store_true", default=False, help="also run tests marked slow (full IMDB training)"
    )


def pytest_collection_modifyitems(config, items):
    if config.getoption("--run-slow"):
        return
    skip = pytest.mark.skip(reason="slow: run with pytest --run-slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def x64():
    """Run one test in float64 (gradient checks need it), then restore float32."""
    import jax

    jax.config.update("jax_enable_x64", True)
    yield
    jax.config.update("jax_enable_x64", False)


@pytest.fixture
def imdb_labeled():
    if not IMDB_LABELED.exists():
        pytest.skip(f"IMDB archive not found at {IMDB_LABELED} (set LSTMKIT_IMDB)")
    return IMDB_LABELED


@pytest.fixture
def imdb_unsup():
    if not IMDB_UNSUP.exists():
        pytest.skip(f"IMDB unlabeled archive not found at {IMDB_UNSUP} (set LSTMKIT_IMDB)")
    return IMDB_UNSUP
