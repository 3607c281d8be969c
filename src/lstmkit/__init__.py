"""lstmkit: understand, train and use LSTM text classifiers, with every gate in view."""

from lstmkit import allocator as _allocator

_allocator.tune()  # before JAX starts its threads, hence at import

from lstmkit.version import __version__  # noqa: E402  (after the allocator is tuned)

# The public API, imported on first use (PEP 562), so `import lstmkit` and the command line's
# --help start without loading JAX. No name here may be a subpackage's: `lstmkit.explain` is the
# package (`from lstmkit.explain import explain`), which a lazy function of that name would
# replace or not depending on what was imported first.
_API = {
    "lstmkit.core.cell": ("Gates", "lstm_cell", "sigmoid", "tanh"),
    "lstmkit.core.init": ("init_bidirectional", "init_lstm"),
    "lstmkit.core.lstm": ("LSTMState", "bidirectional_layer", "lstm_layer", "lstm_stack"),
    "lstmkit.data.dataset": ("Dataset", "train_val_split"),
    "lstmkit.data.imdb": ("load_imdb",),
    "lstmkit.data.sources": ("load_dataset",),
    "lstmkit.data.text": ("TextVectorizer",),
    "lstmkit.errors": ("LstmkitError",),
    "lstmkit.io.checkpoint": ("save_model",),
    "lstmkit.nn.layers": (
        "LSTM",
        "Bidirectional",
        "Dense",
        "Dropout",
        "Embedding",
        "GlobalAveragePool",
        "GlobalMaxPool",
        "MaxMeanPool",
        "SpatialDropout1D",
        "WordDropout",
    ),
    "lstmkit.nn.model": ("Sequential", "load_model"),
}
_WHERE = {name: module for module, names in _API.items() for name in names}
__all__ = sorted(_WHERE) + ["__version__"]


def __getattr__(name):
    if name not in _WHERE:
        raise AttributeError(f"module 'lstmkit' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(_WHERE[name]), name)
    globals()[name] = value
    return value


def __dir__():
    return __all__
