"""Full IMDB training runs: skipped by default, run with `pytest --run-slow` (minutes each)."""

import json

import pytest
from click.testing import CliRunner

from lstmkit.cli import main


def _train(imdb_labeled, out, preset, *extra):
    r = CliRunner().invoke(
        main, ["train", "--data", str(imdb_labeled), "--preset", preset, "--out", str(out), "--quiet", *extra]
    )
    assert r.exit_code == 0, r.output
    return json.loads((out / "metrics.json").read_text())


@pytest.mark.slow
def test_default_preset_reaches_90_percent(imdb_labeled, tmp_path):
    """Word pairs and adversarial training at 0.4, seed 0 (its runs, and seeds 1 and 2, in docs/accuracy.md)."""
    metrics = _train(imdb_labeled, tmp_path / "default", "default")
    assert metrics["accuracy"] >= 0.90, metrics


@pytest.mark.slow
def test_seed_preset_matches_the_seed_notebook(imdb_labeled, tmp_path):
    """The seed's 98-word vocabulary caps accuracy near 70% (the notebook: 70.8%)."""
    metrics = _train(imdb_labeled, tmp_path / "seed", "seed")
    assert 0.685 <= metrics["accuracy"] <= 0.75, metrics


@pytest.mark.slow
def test_best_preset_reaches_90_percent(imdb_labeled, imdb_unsup, tmp_path):
    """Two rounds of self-training on the 50,000 unlabeled reviews: BiLSTM(128) students learn the
    teacher's probabilities (under an hour on 2 cores; seeds 0, 1, 2 in docs/accuracy.md)."""
    metrics = _train(imdb_labeled, tmp_path / "best", "best", "--unlabeled", str(imdb_unsup))
    assert [(r["round"], r["kept"]) for r in metrics["self_training"]] == [
        (1, 50000),
        (2, 50000),
    ]  # soft targets for every unlabeled review
    assert metrics["accuracy"] >= 0.90, metrics
