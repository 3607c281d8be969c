"""What `train --out` and `pretrain --out` may replace: never the user's files, a model only
when asked, and nothing half-done after a kill between a save's two renames."""

import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest
from click.testing import CliRunner

from helpers import TINY, resign_config, saved_model, synthetic_reviews
from lstmkit.cli import main
from lstmkit.errors import LstmkitError
from lstmkit.io import checkpoint, output_folder
from lstmkit.nn.model import load_model


@pytest.fixture()
def project(tmp_path):
    """A user's folder: a labelled CSV and a notes file, as `proj/topics.csv` in the report."""
    proj = tmp_path / "proj"
    proj.mkdir()
    texts, labels = synthetic_reviews(200, seed=3)
    lines = ["review,sentiment"] + [f"{t},{'positive' if y else 'negative'}" for t, y in zip(texts, labels)]
    (proj / "topics.csv").write_text("\n".join(lines) + "\n")
    (proj / "notes.txt").write_text("my notes\n")
    return proj


def listing(folder):
    return sorted((p.relative_to(folder).as_posix(), p.read_bytes()) for p in folder.rglob("*") if p.is_file())


def one_line_exit_2(result, message):
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output


def test_train_refuses_a_folder_of_the_users_files_even_with_overwrite(project):
    before = listing(project)
    for extra in ([], ["--overwrite"]):
        r = CliRunner().invoke(
            main, ["train", "--data", str(project / "topics.csv"), "--out", str(project), *extra, *TINY]
        )
        one_line_exit_2(r, "lstmkit never replaces it")
        assert listing(project) == before  # the CSV and the notes are still there, byte for byte
    assert sorted(p.name for p in project.parent.iterdir()) == ["proj"]  # no lock, temp or .old left beside it


def test_train_refuses_a_file_as_out(project):
    r = CliRunner().invoke(
        main, ["train", "--data", str(project / "topics.csv"), "--out", str(project / "notes.txt"), *TINY]
    )
    one_line_exit_2(r, "is a file")
    assert (project / "notes.txt").read_text() == "my notes\n"


def test_a_model_is_replaced_only_with_overwrite(project, tmp_path):
    out = saved_model(tmp_path / "model")
    before = listing(out)
    r = CliRunner().invoke(main, ["train", "--data", str(project / "topics.csv"), "--out", str(out), *TINY])
    one_line_exit_2(r, "already holds a trained model directory; replace it with --overwrite")
    assert listing(out) == before
    r = CliRunner().invoke(
        main, ["train", "--data", str(project / "topics.csv"), "--out", str(out), "--overwrite", "--epochs", "1", *TINY]
    )
    assert r.exit_code == 0, r.output
    assert listing(out) != before and load_model(out).class_names == ["negative", "positive"]
    assert json.loads((out / "config.json").read_text())["status"] == "complete"


def test_an_interrupted_run_asks_for_resume_or_overwrite(project, tmp_path):
    out = saved_model(tmp_path / "model", status="training")
    r = CliRunner().invoke(main, ["train", "--data", str(project / "topics.csv"), "--out", str(out), *TINY])
    one_line_exit_2(r, "holds an interrupted run; continue it with --resume")
    r = CliRunner().invoke(
        main, ["train", "--data", str(project / "topics.csv"), "--out", str(tmp_path / "new"), "--resume", *TINY]
    )
    one_line_exit_2(r, "has no interrupted run to resume")


def test_saving_a_model_over_the_users_files_is_refused(tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "thesis.tex").write_text("years of work")
    with pytest.raises(LstmkitError, match="never replaces it"):
        saved_model(folder)
    assert listing(folder) == [("thesis.tex", b"years of work")]


def test_pretrain_refuses_the_users_files_and_replaces_only_with_overwrite(project, tmp_path):
    r = CliRunner().invoke(main, ["pretrain", "--data", str(project / "topics.csv"), "--out", str(project), "--quiet"])
    one_line_exit_2(r, "lstmkit never replaces it")
    r = CliRunner().invoke(
        main, ["pretrain", "--data", str(project / "topics.csv"), "--out", str(saved_model(tmp_path / "m")), "--quiet"]
    )
    one_line_exit_2(r, "holds an lstmkit model directory, not a pretrained one")


def test_a_kill_between_the_two_renames_is_recovered(tmp_path):
    """The save renames OUT -> OUT.old, then the new folder -> OUT. Killed in between, OUT is
    missing; the next run puts OUT.old back, and a dead process's temp folder is removed."""
    out = saved_model(tmp_path / "model", status="training")
    before = listing(out)
    os.rename(out, tmp_path / "model.old")
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    ).stdout.strip()
    leftover = tmp_path / f".model.tmp-{dead}"
    leftover.mkdir()
    (leftover / "weights.safetensors").write_bytes(b"half")
    said = output_folder.recover_interrupted_save(out)
    assert "recovered" in said
    assert listing(out) == before and not (tmp_path / "model.old").exists() and not leftover.exists()
    load_model(out)


def test_a_second_writer_is_refused_while_the_first_holds_the_folder(tmp_path):
    out = tmp_path / "model"
    with output_folder.output_lock(out):
        with pytest.raises(LstmkitError, match="another lstmkit process is writing"), output_folder.output_lock(out):
            pass
        probe = "from lstmkit import errors\nfrom lstmkit.io import output_folder\ntry:\n    output_folder.output_lock(%r).__enter__()\nexcept errors.LstmkitError as e:\n    print(e)"
        other = subprocess.run([sys.executable, "-c", probe % str(out)], capture_output=True, text=True, timeout=120)
        assert "another lstmkit process is writing" in other.stdout, other.stderr
    with output_folder.output_lock(out):  # released: it can be taken again, and leaves no lock file
        pass
    assert list(tmp_path.iterdir()) == []


def _edit_config(directory, edit, sign=True):
    if sign:
        resign_config(directory, edit)
        return
    path = directory / "config.json"
    path.write_text(json.dumps(edit(json.loads(path.read_text()))))


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda c: {**c, "kind": "pretrained"}, "holds a pretrained language model, not a classifier"),
        (lambda c: [c], "is not an lstmkit config"),
        (lambda c: {**c, "format_version": True}, "has no format_version"),
        (lambda c: {**c, "format_version": -5}, "has format_version -5, which no lstmkit writes"),
        (lambda c: {**c, "format_version": 0}, "has format_version 0, which no lstmkit writes"),
        (lambda c: {k: v for k, v in c.items() if k != "files"}, "lists no files to verify"),
        (lambda c: {**c, "files": {}}, "lists no files to verify"),
        (lambda c: {**c, "surprise": 1}, "holds an unknown key 'surprise'"),
        (lambda c: {**c, "has_vectorizer": "yes"}, "'has_vectorizer' is a str"),
        (lambda c: {**c, "model": {**c["model"], "loss": 3}}, "'model.loss' is a int"),
        (lambda c: {**c, "model": {**c["model"], "class_names": [1, 2]}}, "class_names must be a list of strings"),
        (lambda c: {**c, "files": {"../outside.bin": "0" * 64}}, "lists its files wrongly"),
        (lambda c: {**c, "files": {"/etc/passwd": "0" * 64}}, "lists its files wrongly"),
        (lambda c: {**c, "model": {**c["model"], "layers": "Embedding"}}, "has no model layers"),
        (lambda c: {**c, "model": {**c["model"], "members": 2}}, "weights-member2.safetensors is missing"),
        (lambda c: {**c, "model": {**c["model"], "members": 0}}, "says the model has 0 members"),
        (lambda c: {**c, "model": {**c["model"], "members": "2"}}, "'model.members' is a str"),
        (
            lambda c: {**c, "model": {**c["model"], "layers": [{"type": "Embedding", "input_dim": 5}]}},
            "describes layers lstmkit cannot build",
        ),
        (
            lambda c: {
                **c,
                "model": {
                    **c["model"],
                    "layers": [{**c["model"]["layers"][0], "input_dim": 3}, *c["model"]["layers"][1:]],
                },
            },
            "tokens but its Embedding 3 rows",
        ),
    ],
)
def test_a_damaged_or_foreign_config_is_one_clear_line(tmp_path, edit, message):
    """predict, evaluate and explain load through load_model: each refusal is one line, exit 2."""
    directory = saved_model(tmp_path / "m")
    _edit_config(directory, edit)
    with pytest.raises(LstmkitError, match=message):
        load_model(directory)
    one_line_exit_2(CliRunner().invoke(main, ["predict", str(directory), "a fine film"]), message)


def test_config_json_is_covered_by_its_own_checksum(tmp_path):
    """An edit that does not recompute config_sha256 (dropping `files` to skip verification, say) is refused."""
    directory = saved_model(tmp_path / "m")
    config = json.loads((directory / "config.json").read_text())
    assert len(config["config_sha256"]) == 64
    _edit_config(directory, lambda c: {k: v for k, v in c.items() if k != "files"}, sign=False)
    with pytest.raises(LstmkitError, match="corrupted or was edited"):
        load_model(directory)


def test_format_1_directories_without_a_config_checksum_still_load(tmp_path):
    directory = saved_model(tmp_path / "m")
    _edit_config(directory, lambda c: {k: v for k, v in c.items() if k != "config_sha256"} | {"format_version": 1})
    assert load_model(directory).class_names == ["negative", "positive"]


def _sparse_safetensors(path, tensors, extra_bytes):
    """A safetensors file whose header declares `tensors` ({name: (dtype, shape, nbytes)}) and
    whose data is a hole of the declared size: large on paper, nothing on disk."""
    header, offset = {}, 0
    for name, (dtype, shape, nbytes) in tensors.items():
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    with open(path, "wb") as f:
        f.write(len(raw).to_bytes(8, "little") + raw)
        f.truncate(8 + len(raw) + offset + extra_bytes)


def test_tensor_shapes_are_checked_from_the_header_before_loading(tmp_path):
    """An extra 1 GiB tensor (a sparse file) is refused from the header: no gigabyte is read."""
    import resource

    from safetensors.numpy import load_file

    directory = saved_model(tmp_path / "m")
    weights = directory / checkpoint.WEIGHTS
    real = load_file(weights)
    tensors = {n: ("F32", a.shape, a.nbytes) for n, a in real.items()}
    template = {n: np.zeros(a.shape, np.float32) for n, a in real.items()}
    hostile = tmp_path / "hostile.safetensors"
    _sparse_safetensors(hostile, {**tensors, "huge": ("F32", (2**28,), 2**30)}, 0)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(LstmkitError, match="holds a tensor 'huge' that the config's layers do not have"):
        checkpoint.load_weights(hostile, template)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 100_000  # KiB: far below the 1 GiB
    name = next(iter(tensors))
    wrong = {**tensors, name: ("F32", (1, 2, 3), 24)}
    _sparse_safetensors(hostile, wrong, 0)
    with pytest.raises(LstmkitError, match=f"tensor '{name}' has shape \\(1, 2, 3\\)"):
        checkpoint.load_weights(hostile, template)
    hostile.write_bytes((2**40).to_bytes(8, "little") + b"{}")
    with pytest.raises(LstmkitError, match="not a safetensors file lstmkit wrote"):
        checkpoint.load_weights(hostile, template)
    assert set(checkpoint.load_weights(weights, template)) == set(real)


def test_a_full_disk_during_a_save_is_one_line_and_keeps_the_last_checkpoint(tmp_path, monkeypatch):
    import errno

    import safetensors.numpy

    directory = saved_model(tmp_path / "m")
    before = listing(directory)

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(safetensors.numpy, "save_file", full)
    with pytest.raises(LstmkitError, match="No space left on device.*the last checkpoint, if any\\) is intact"):
        saved_model(directory)
    assert listing(directory) == before and sorted(p.name for p in tmp_path.iterdir()) == ["m"]


def test_the_training_state_is_checked_from_its_header_before_loading(tmp_path):
    """--resume reads training_state.safetensors: a tensor the optimizer does not have is refused
    from the header, as the weights' are."""
    import optax
    from safetensors.numpy import load_file, save_file

    from lstmkit.atomic import sha256

    directory = saved_model(tmp_path / "m")
    model = load_model(directory)
    opt_state = optax.adam(1e-3).init(model.params)
    checkpoint.save_model(model, directory, opt_state=opt_state, training={"epoch": 0}, status="training")
    loaded = checkpoint.load_training_state(directory, opt_state, model.params)
    assert len(jax.tree.leaves(loaded[0])) == len(jax.tree.leaves(opt_state))
    state = directory / checkpoint.STATE
    save_file({**load_file(state), "huge": np.zeros(4, np.float32)}, state)
    resign_config(directory, lambda c: {**c, "files": {**c["files"], checkpoint.STATE: sha256(state)}})
    with pytest.raises(LstmkitError, match="training state .* does not match this configuration .*'huge'"):
        checkpoint.load_training_state(directory, opt_state, model.params)
    # the arrays a run saves (self-training's pseudo-labels) are bounded by the data, not by the file
    arrays = {"extra.pseudo.index": np.arange(10, dtype=np.int32), "extra.pseudo.label": np.zeros((10, 2), np.float32)}
    save_file({k: v for k, v in load_file(state).items() if k != "huge"} | arrays, state)
    resign_config(directory, lambda c: {**c, "files": {**c["files"], checkpoint.STATE: sha256(state)}})
    bounds = {"pseudo.index": (10,), "pseudo.label": (10, 2)}
    loaded = checkpoint.load_training_state(directory, opt_state, model.params, arrays_at_most=bounds)
    assert loaded[4]["pseudo.index"].tolist() == list(range(10))
    with pytest.raises(LstmkitError, match="'extra.pseudo.index' has shape \\(10,\\), more than the data allows"):
        checkpoint.load_training_state(
            directory, opt_state, model.params, arrays_at_most={**bounds, "pseudo.index": (9,)}
        )
    with pytest.raises(LstmkitError, match="'extra.pseudo.label'"):  # not a name this run saves
        checkpoint.load_training_state(directory, opt_state, model.params, arrays_at_most={"pseudo.index": (10,)})
