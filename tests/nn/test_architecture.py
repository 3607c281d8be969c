"""The architecture is a value: equal models share compiled code; nothing sets a model's attributes from outside; the compiled loss."""

import ast
from pathlib import Path

import numpy as np
import pytest

from helpers import resign_config, synthetic_reviews
from lstmkit import LstmkitError
from lstmkit.nn import steps
from lstmkit.nn.layers import LSTM, Bidirectional, Dense, Embedding
from lstmkit.nn.model import Sequential, load_model
from lstmkit.nn.optim import OptimizerSettings
from lstmkit.tasks.classifier import build_model
from lstmkit.tasks.presets import resolve

SIZES = {"max_tokens": 16, "embedding_dim": 8, "lstm_units": 6, "sequence_length": 16, "dense_units": 4}


def _cache_sizes():
    return steps.train_step._cache_size(), steps.eval_step._cache_size(), steps.predict_step._cache_size()


def _fit_once(units=6):
    texts, labels = synthetic_reviews(64, seed=0)
    model = build_model(resolve("default", **{**SIZES, "lstm_units": units}), 2, steps_per_epoch=2)
    model.vectorizer.adapt(texts)
    model.fit(texts, labels, epochs=1, batch_size=32, validation_data=(texts, labels), verbose=False)
    model.predict(texts[:5])
    return model


def test_equal_configurations_give_equal_hashable_architectures_and_share_compiled_code():
    config = resolve("default", **SIZES)
    a, b = build_model(config, 2, steps_per_epoch=2), build_model(config, 2, steps_per_epoch=2)
    assert a.architecture == b.architecture and hash(a.architecture) == hash(b.architecture)
    assert a.architecture is not b.architecture
    _fit_once()
    before = _cache_sizes()
    _fit_once()  # a second model, built anew from the same configuration: nothing compiles
    assert _cache_sizes() == before
    _fit_once(units=7)  # another architecture compiles its own
    assert _cache_sizes()[0] > before[0]


def test_optimizer_settings_are_values():
    assert OptimizerSettings("adam", 1e-3, total_steps=5) == OptimizerSettings("adam", 1e-3)
    assert OptimizerSettings("adam", 1e-3) != OptimizerSettings("sgd", 1e-3)
    with pytest.raises(LstmkitError, match="weight-average"):
        OptimizerSettings(average=2.0)


def _model_attributes():
    props = {k for k, v in vars(Sequential).items() if isinstance(v, property)}
    return set(Sequential.__slots__) | props


def test_no_module_sets_a_models_attributes_from_outside():
    """Only the model's own methods (self.x = ...) assign its attributes; and it takes no others."""
    names, found = _model_attributes(), []
    src = Path(__file__).resolve().parents[2] / "src" / "lstmkit"
    for path in src.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
            for t in targets:
                own = isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name) and t.value.id == "self"
                if isinstance(t, ast.Attribute) and t.attr in names and not own:
                    found.append(f"{path.name}:{node.lineno} .{t.attr}")
    assert not found, found
    with pytest.raises(AttributeError):
        Sequential()._explain_view = None


def test_a_loaded_model_is_complete(tmp_path):
    texts, _ = synthetic_reviews(40, seed=1)
    model = build_model(resolve("default", **SIZES), 2, steps_per_epoch=2, class_names=["neg", "pos"])
    model.vectorizer.adapt(texts)
    model.build(seed=0)
    model.save(tmp_path / "m", train_config={"seed": 1})
    loaded = load_model(tmp_path / "m")
    assert loaded.class_names == ["neg", "pos"] and loaded.train_config == {"seed": 1}
    assert loaded.directory is not None and loaded.vectorizer is not None and loaded.params is not None
    assert loaded.loss == "binary_crossentropy"
    assert loaded.layers == model.layers


def _three_classes():
    return Sequential([Embedding(20, 4, mask_zero=True), Bidirectional(LSTM(3)), Dense(3, "softmax")])


def test_compile_loss_is_honoured_or_refused(tmp_path):
    with pytest.raises(LstmkitError, match=r"binary_crossentropy.*3"):
        _three_classes().compile(loss="binary_crossentropy")
    binary = Sequential([Embedding(20, 4), LSTM(3), Dense(1, "sigmoid")])
    with pytest.raises(LstmkitError, match=r"sparse_categorical_crossentropy.*1"):
        binary.compile(loss="sparse_categorical_crossentropy")
    with pytest.raises(LstmkitError, match="unknown loss"):
        binary.compile(loss="mse")
    assert _three_classes().compile().loss == "sparse_categorical_crossentropy"
    assert binary.compile().loss == "binary_crossentropy"
    late = Sequential([Embedding(20, 4), LSTM(3)]).compile(loss="binary_crossentropy")
    late.add(Dense(3, "softmax"))  # the check waits for the last layer: fit refuses
    with pytest.raises(LstmkitError, match="binary_crossentropy"):
        late.fit(np.ones((4, 3), np.int32), [0, 1, 2, 0], verbose=False)

    # A model saved before the check, with a loss its width contradicts, loads with the one it trained with.
    model = _three_classes().compile()
    model.build(seed=0)
    model.save(tmp_path / "m")
    resign_config(
        tmp_path / "m", lambda config: {**config, "model": {**config["model"], "loss": "binary_crossentropy"}}
    )
    assert load_model(tmp_path / "m").loss == "sparse_categorical_crossentropy"
