"""`lstmkit train` in several real processes on 127.0.0.1 (`lstmkit.nn.parallel`,
`lstmkit.cli.processes`): the same weights and predictions as one process (also read from a
token file, `--stream`), one writer, and a dead process ending the run in bounded time with one line."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from safetensors.numpy import load_file

from helpers import TINY, synthetic_reviews
from lstmkit.cli import main
from lstmkit.cli.processes import _child_arguments
from lstmkit.nn.model import load_model
from lstmkit.nn.parallel import PEER_SILENCE_SECONDS

NO_DROPOUT = ["--dropout", "0", "--embedding-dropout", "0"]
# Every kind of dropout at once: each process keeps its rows of the whole batch's masks (`lstmkit.nn.row_random`).
DROPOUT = ["--dropout", "0.3", "--embedding-dropout", "0.2", "--word-dropout", "0.1", "--bigram-dropout", "0.2"]
LIGHT = ["--no-bidirectional", "--adversarial", "0", "--inference-length", "0"]  # less to compile


@pytest.fixture(scope="module")
def csv_data(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "reviews.csv"
    texts, labels = synthetic_reviews(400, seed=10)
    with open(path, "w") as f:
        f.write("review,sentiment\n")
        for t, y in zip(texts, labels):
            f.write(f'"{t}",{"positive" if y else "negative"}\n')
    return path


def _train_command(csv_data, out, *args):
    return [sys.executable, "-m", "lstmkit.cli", "train", "--data", str(csv_data), "--out", str(out), *TINY, *args]


def _train(csv_data, out, *args, timeout=240):
    result = subprocess.run(_train_command(csv_data, out, *args), capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stderr[-2000:]
    return result


def _weights(out):
    return load_file(str(out / "weights.safetensors"))


def _assert_same_run(one, two, texts):
    """The same weights (float32, relative 1e-5 of each tensor's largest entry) and predictions."""
    a, b = _weights(one), _weights(two)
    assert sorted(a) == sorted(b)
    for name in a:
        scale = max(float(np.abs(a[name]).max()), 1e-30)
        assert float(np.abs(a[name] - b[name]).max()) / scale < 1e-5, name
    np.testing.assert_allclose(load_model(two).predict(texts), load_model(one).predict(texts), rtol=1e-5, atol=1e-6)


def test_two_processes_train_what_one_does(csv_data, tmp_path):
    common = ["--epochs", "3", "--seed", "3", "--early-stopping", "1", "--inference-length", "0", *DROPOUT]
    _train(csv_data, tmp_path / "one", *common)
    # The two processes read the file as a token file, each only its rows of every batch (`--stream`).
    two = _train(csv_data, tmp_path / "two", *common, "--processes", "2", "--stream")
    _assert_same_run(tmp_path / "one", tmp_path / "two", synthetic_reviews(50, seed=99)[0])
    one_history, two_history = (_history(tmp_path / d) for d in ("one", "two"))
    assert sorted(two_history) == sorted(one_history)
    for key, value in one_history.items():  # early stopping's best epoch too
        np.testing.assert_allclose(two_history[key], value, rtol=1e-5, atol=1e-6, err_msg=key)
    assert two.stdout.count("model saved to") == 1  # process 0 reports; process 1 is silent
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one", "two"]  # and writes nothing


def _history(out):
    history = json.loads((out / "history.json").read_text())
    history.pop("epoch_time")
    return history


def _children(pid):
    """The process ids `pid` started (Linux)."""
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return [int(p) for p in f.read().split()]


def test_a_killed_process_stops_the_other_within_a_minute_and_the_run_resumes(csv_data, tmp_path):
    parent = subprocess.Popen(
        _train_command(csv_data, tmp_path / "m", "--epochs", "500", *LIGHT, "--processes", "2"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        for line in parent.stdout:
            if line.startswith("epoch 2/"):  # mid-run: epoch 1's checkpoint is written
                break
        (child,) = _children(parent.pid)
        os.kill(child, signal.SIGKILL)
        killed = time.monotonic()
        _, err = parent.communicate(timeout=60)
    finally:
        parent.kill()
    assert time.monotonic() - killed < 60
    assert parent.returncode not in (0, None)
    last = err.strip().splitlines()[-1]
    assert last.startswith("Error: ") and "stopping" in last, err[-2000:]
    assert "Traceback" not in err

    saved = json.loads((tmp_path / "m" / "training_state.json").read_text())["epoch"]  # 0-based, >= 0
    _train(csv_data, tmp_path / "m", "--resume", "--epochs", str(saved + 2), "--processes", "2")
    assert json.loads((tmp_path / "m" / "config.json").read_text())["status"] == "complete"
    assert len(json.loads((tmp_path / "m" / "history.json").read_text())["loss"]) == saved + 2


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
@pytest.mark.parametrize("victim", [0, 1])
def test_across_hosts_a_killed_process_stops_the_other(csv_data, tmp_path, victim):
    """Processes joined by --coordinator (as on several hosts): no parent watches them, JAX's
    runtime and gloo do."""
    join = ["--coordinator", f"127.0.0.1:{_free_port()}", "--num-processes", "2", "--process-id"]
    command = _train_command(csv_data, tmp_path / "m", "--epochs", "500", *LIGHT, *join)
    first = subprocess.Popen([*command, "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    second = subprocess.Popen([*command, "1"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        for line in first.stdout:
            if line.startswith("epoch 2/"):
                break
        killed, other = (first, second) if victim == 0 else (second, first)
        killed.kill()
        t0 = time.monotonic()
        _, err = other.communicate(timeout=60)
        assert time.monotonic() - t0 < 60
    finally:
        first.kill()
        second.kill()
    assert other.returncode not in (0, None)
    assert err.strip().splitlines()[-1].startswith("Error: "), err[-2000:]


@pytest.mark.slow
def test_self_training_in_two_processes_is_one_process_run(csv_data, tmp_path):
    unlabeled = tmp_path / "unlabeled.txt"
    unlabeled.write_text("\n".join(synthetic_reviews(200, seed=7)[0]) + "\n")
    common = [
        "--epochs",
        "2",
        "--seed",
        "3",
        *LIGHT,
        *NO_DROPOUT,
        "--self-training",
        "1",
        "--unlabeled",
        str(unlabeled),
    ]
    _train(csv_data, tmp_path / "one", *common)
    _train(csv_data, tmp_path / "two", *common, "--processes", "2")
    _assert_same_run(tmp_path / "one", tmp_path / "two", synthetic_reviews(50, seed=99)[0])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--processes", "2", "--coordinator", "127.0.0.1:1"], "give one or the other"),
        (["--processes", "2", "--batch-size", "33"], "--batch-size 33 does not split evenly over 2 processes"),
    ],
)
def test_process_flags_that_do_not_go_together_are_one_line(args, message):
    result = CliRunner().invoke(main, ["train", *args])
    assert result.exit_code == 2
    assert message in result.output and len(result.output.strip().splitlines()) == 1


def test_children_run_the_same_command_without_processes():
    argv = ["train", "--processes", "3", "--data", "x.csv", "--processes=3", "--epochs", "2"]
    assert _child_arguments(argv) == ["train", "--data", "x.csv", "--epochs", "2"]


@pytest.mark.slow
def test_ctrl_c_stops_every_process_with_one_resume_hint(csv_data, tmp_path):
    run = subprocess.Popen(
        _train_command(csv_data, tmp_path / "m", "--epochs", "500", *LIGHT, "--processes", "2"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as a terminal's Ctrl-C reaches
    )
    try:
        for line in run.stdout:
            if line.startswith("epoch 2/"):
                break
        (child,) = _children(run.pid)
        os.killpg(run.pid, signal.SIGINT)
        _, err = run.communicate(timeout=60)
    finally:
        run.kill()
    assert run.returncode == 130
    assert err.count("continue with --resume") == 1 and "Error" not in err, err[-2000:]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not _gone(child):
        time.sleep(0.2)
    assert _gone(child)


@pytest.mark.slow
def test_a_hung_process_stops_the_other(csv_data, tmp_path):
    """A stopped process keeps its sockets open, so no collective fails: the silent-peer watch
    (`lstmkit.nn.parallel.PEER_SILENCE_SECONDS`) ends the run."""
    run = subprocess.Popen(
        _train_command(csv_data, tmp_path / "m", "--epochs", "500", *LIGHT, "--processes", "2"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        for line in run.stdout:
            if line.startswith("epoch 2/"):
                break
        (child,) = _children(run.pid)
        os.kill(child, signal.SIGSTOP)
        _, err = run.communicate(timeout=PEER_SILENCE_SECONDS + 60)
    finally:
        run.kill()
    assert run.returncode == 1
    assert (
        err.strip().splitlines()[-1]
        == f"Error: process 1 of 2 has been silent for {PEER_SILENCE_SECONDS} s (dead or hung); stopping"
    )
    assert _gone(child)


def _gone(pid):
    """True when process `pid` has ended (a zombie not yet reaped counts)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except FileNotFoundError:
        return True
