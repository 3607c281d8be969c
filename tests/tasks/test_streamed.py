"""`lstmkit train --stream`: the same run as without it, from a token file that a second run opens
instead of vectorizing again; and what it cannot read is one line."""

import json

import numpy as np
from click.testing import CliRunner
from safetensors.numpy import load_file

from helpers import synthetic_reviews
from lstmkit.cli import main
from lstmkit.tasks.presets import resolve
from lstmkit.tasks.run import train_run

SMALL = {
    "max_tokens": 40,
    "sequence_length": 16,
    "embedding_dim": 8,
    "lstm_units": 8,
    "dense_units": 8,
    "batch_size": 32,
    "learning_rate": 0.01,
    "epochs": 2,
    "seed": 3,
    "bidirectional": False,
}


def _csv(path, n, seed):
    texts, labels = synthetic_reviews(n, seed=seed)
    texts[7] = " "  # an empty text, dropped by both
    path.write_text("review,sentiment\n" + "".join(f'"{t}",{"pos" if y else "neg"}\n' for t, y in zip(texts, labels)))
    return path


def _same_run(a, b):
    wa, wb = load_file(str(a / "weights.safetensors")), load_file(str(b / "weights.safetensors"))
    assert sorted(wa) == sorted(wb)
    for name in wa:  # the same batches through the same steps: the same bits
        np.testing.assert_array_equal(wa[name], wb[name], err_msg=name)
    ha, hb = (json.loads((d / "history.json").read_text()) for d in (a, b))
    ha.pop("epoch_time"), hb.pop("epoch_time")
    assert ha == hb


def test_a_streamed_run_is_the_in_memory_run(tmp_path, capsys, recwarn):
    """With --test-data (its own token file, the training vocabulary) and dropout on, in one process;
    tests/cli/test_train_processes.py streams the file without --test-data across two processes."""
    data, test_data = _csv(tmp_path / "reviews.csv", 260, seed=1), _csv(tmp_path / "test.csv", 60, seed=2)
    config = resolve("seed", **SMALL, validation=0.2, dropout=0.3, shuffle_buffer=0)  # seed: little to compile
    metrics = [
        train_run(config, data, tmp_path / out, test_data=test_data, stream=stream, progress=False)
        for out, stream in (("memory", False), ("stream", True), ("again", True))
    ]
    _same_run(tmp_path / "memory", tmp_path / "stream")
    _same_run(tmp_path / "memory", tmp_path / "again")
    assert metrics[0]["accuracy"] == metrics[1]["accuracy"] and metrics[0]["n"] == metrics[1]["n"] == 59
    said = capsys.readouterr().out
    assert said.count("vectorized into the token cache") == 1 and said.count("token cache opened") == 1


def test_what_stream_cannot_read_is_one_line(tmp_path):
    (tmp_path / "classes" / "pos").mkdir(parents=True)
    result = CliRunner().invoke(
        main, ["train", "--stream", "--data", str(tmp_path / "classes"), "--out", str(tmp_path / "m")]
    )
    assert result.exit_code == 2, result.output
    assert "--stream reads one CSV, TSV, JSON Lines or fastText file" in result.output
    assert "Traceback" not in result.output
    several = tmp_path / "tags.txt"  # multi-label lines: detected, or said with --multi-label
    several.write_text("".join(f"__label__a __label__b text {i}\n__label__b other {i}\n" for i in range(20)))
    for extra, message in (([], "row 1 has several labels (a, b)"), (["--multi-label"], "one label per text")):
        args = ["train", "--stream", "--data", str(several), "--out", str(tmp_path / "m2"), *extra]
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 2, result.output
        assert message in result.output and "without --stream" in result.output
        assert "Traceback" not in result.output and not (tmp_path / "m2").exists()
