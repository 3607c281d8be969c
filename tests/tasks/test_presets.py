"""Presets: their choices match the layers that implement them, and every preset builds."""

import pytest

from lstmkit.errors import LstmkitError
from lstmkit.io import checkpoint
from lstmkit.nn import layers as L
from lstmkit.nn.pooling import POOLINGS
from lstmkit.tasks.classifier import build_model
from lstmkit.tasks.presets import CHOICES, HELP, MAX_MEMBERS, PRESETS, SEED, help_line, resolve, round_config


def test_pooling_choices_are_the_pooling_layers_and_members_fit_a_model_directory():
    assert set(CHOICES["pooling"]) == {"last", *POOLINGS}
    assert MAX_MEMBERS == checkpoint.MAX_MEMBERS  # what train accepts, a model directory holds


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_builds_the_classifier_it_describes(name):
    config = resolve(name)
    model = build_model(config, 2, steps_per_epoch=10)
    embedding = next(layer for layer in model.layers if isinstance(layer, L.Embedding))
    assert (embedding.input_dim, embedding.output_dim) == (config["max_tokens"], config["embedding_dim"])
    assert embedding.bigram_buckets == config["bigram_buckets"]
    pooled = [layer for layer in model.layers if type(layer) in POOLINGS.values()]
    assert [type(layer) for layer in pooled] == ([] if config["pooling"] == "last" else [POOLINGS[config["pooling"]]])


def test_every_setting_has_its_own_help_line():
    """`lstmkit train --help` explains each flag; a new setting without a line in HELP fails here."""
    flags = set(SEED) - {"student"}  # --student has its own help
    assert flags <= set(HELP), sorted(flags - set(HELP))
    assert help_line("adversarial") == f"{HELP['adversarial']} [default preset: 0.4]"
    assert help_line("group_validation").endswith("[default preset: true]")


def test_final_members_set_the_last_students_members_only():
    """--final-members: the last round's student is an ensemble; the teacher and earlier students are not."""
    config = resolve("best", final_members=3)
    assert [round_config(config, r)["members"] for r in range(3)] == [1, 1, 3]
    assert [round_config(config, r)["lstm_units"] for r in range(3)] == [64, 128, 128]
    plain = resolve("best")
    assert [round_config(plain, r)["members"] for r in range(3)] == [1, 1, 1]
    assert [round_config(resolve("best", student={"members": 2}), r)["members"] for r in range(3)] == [1, 2, 2]
    with pytest.raises(LstmkitError, match="add --self-training N, or use --members"):
        resolve("default", final_members=2)
    assert resolve("best", self_training=0)["final_members"] == PRESETS["best"]["final_members"]  # waits unused
