"""The README's command lines run as written (tests/test_layout.py runs its Python example).

Every `lstmkit ...` line of the "Use it" block, and the quick start's `lstmkit train`, runs in a
folder that holds small stand-ins for the files the lines name: reviews.csv, test.csv and new.csv
of synthetic reviews, and IMDB archives of synthetic reviews at ../shared/data/imdb/ and in the
download cache (for `--data imdb`, the default). The lines run unchanged; training lines get
flags appended that make them small (`helpers.TINY`, one epoch, one self-training round with a
small student). The three lines that train on IMDB take minutes even so, and are marked slow; at
full size (IMDB, the `best` preset's 45 minutes) the presets run in tests/tasks/test_slow.py.

Not run here: the quick start's `pip install` steps (they need the network and build a virtual
environment: CI's own setup runs them) and `pytest` itself.
"""

import re
import shlex
import tarfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from helpers import TINY, synthetic_reviews
from lstmkit.atomic import sha256
from lstmkit.cli import main
from lstmkit.data import imdb
from lstmkit.paths import lstmkit_home

README = Path(__file__).resolve().parents[1] / "README.md"
SMALL = {  # what each training line gets appended, after its own flags
    "seed": [*TINY, "--epochs", "1"],
    "default": [*TINY, "--epochs", "1"],
    "best": [*TINY, "--epochs", "1", "--self-training", "1", "--student", "lstm_units=8"],
}


def readme_command_lines(heading):
    """The `lstmkit` command lines (argv after `lstmkit`) of the first bash block under `heading`;
    a line continued with a backslash is one command, `&&` separates commands, # starts a comment."""
    block = re.search(rf"^## {heading}\n.*?```bash\n(.*?)```", README.read_text(), flags=re.S | re.M).group(1)
    commands = []
    for line in block.replace("\\\n", " ").splitlines():
        words = shlex.split(line, comments=True)
        while words:
            command, words = (
                (words[: words.index("&&")], words[words.index("&&") + 1 :]) if "&&" in words else (words, [])
            )
            if command and Path(command[0]).name == "lstmkit":
                commands.append(command[1:])
    return commands


def write_reviews_csv(path, n, seed):
    texts, labels = synthetic_reviews(n, seed=seed)
    with open(path, "w") as f:
        f.write("id,review,sentiment\n")
        for k, (text, y) in enumerate(zip(texts, labels)):
            f.write(f'r{k},"{text}",{"positive" if y else "negative"}\n')


def write_imdb_archives(folder, n=80):
    """aclImdb_labeled.tar.gz (train and test, pos and neg) and aclImdb_unsup.tar.gz (train/unsup),
    in the official layout, of synthetic reviews; returns the labeled archive."""
    root = folder / "tree"
    for split, seed in (("train", 1), ("test", 2), ("unsup", 3)):
        texts, labels = synthetic_reviews(n, seed=seed)
        for i, (text, y) in enumerate(zip(texts, labels)):
            sub = root / "aclImdb" / ("train/unsup" if split == "unsup" else f"{split}/{'pos' if y else 'neg'}")
            sub.mkdir(parents=True, exist_ok=True)
            # ids 25 apart: IMDB's validation holds out blocks of 100 ids (its movies), so several blocks
            (sub / f"{25 * i}_{0 if split == 'unsup' else 9 if y else 2}.txt").write_text(text)
    for name, members in (
        ("aclImdb_labeled.tar.gz", ("train/pos", "train/neg", "test")),
        ("aclImdb_unsup.tar.gz", ("train/unsup",)),
    ):
        with tarfile.open(folder / name, "w:gz") as tar:
            for member in members:
                tar.add(root / "aclImdb" / member, arcname=f"aclImdb/{member}")
    return folder / "aclImdb_labeled.tar.gz"


@pytest.fixture()
def readme_folder(tmp_path, monkeypatch):
    """A repository root holding what the README's lines read, with IMDB beside it and in the cache."""
    root = tmp_path / "repo"
    root.mkdir()
    write_reviews_csv(root / "reviews.csv", 300, seed=21)
    write_reviews_csv(root / "test.csv", 60, seed=22)
    write_reviews_csv(root / "new.csv", 5, seed=23)
    shared = tmp_path / "shared" / "data" / "imdb"
    shared.mkdir(parents=True)
    labeled = write_imdb_archives(shared)
    cache = lstmkit_home() / "datasets"
    cache.mkdir(parents=True, exist_ok=True)
    (cache / imdb.IMDB_FILENAME).write_bytes(labeled.read_bytes())  # `--data imdb` finds it downloaded
    monkeypatch.setattr(imdb, "IMDB_SHA256", sha256(labeled))
    monkeypatch.chdir(root)
    return root


def run(argv):
    preset = argv[argv.index("--preset") + 1] if "--preset" in argv else "default"
    args = [*argv, *SMALL[preset]] if argv[0] == "train" else argv
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, f"lstmkit {shlex.join(argv)}\n{result.output}"
    return result.output


def reads_imdb(argv):
    """A training line whose data is IMDB: an archive, or `--data imdb`, the default."""
    return argv[0] == "train" and "imdb" in (argv[argv.index("--data") + 1] if "--data" in argv else "imdb")


def test_the_readme_command_lines_run_as_written(readme_folder):
    """Train on your own CSV (runs/m), then every other line of "Use it" on that model."""
    use_it = readme_command_lines("Use it")
    assert {"cell", "train", "evaluate", "predict", "explain", "plot", "info"} <= {c[0] for c in use_it}
    ours = [c for c in use_it if not reads_imdb(c)]
    # Training first: the others read the model it writes.
    for argv in sorted(ours, key=lambda c: c[0] != "train"):
        output = run(argv)
        if argv[0] == "predict" and "--json" in argv:
            assert '"label"' in output
    assert (readme_folder / "runs" / "m" / "config.json").is_file()
    for name in ("page.html", "page.png"):
        assert (readme_folder / name).stat().st_size > 1000


@pytest.mark.slow
def test_the_readme_imdb_training_lines_run_as_written(readme_folder):
    """The lines that train on IMDB: the quick start's default preset, the seed preset on the
    downloaded archive, and the best preset's self-training on the unlabeled reviews. Small
    stand-in archives, but three trainings (best: a teacher and a student) take minutes on 2 cores."""
    lines = readme_command_lines("Quick start") + [c for c in readme_command_lines("Use it") if reads_imdb(c)]
    assert sorted(c[c.index("--preset") + 1] for c in lines) == ["best", "default", "seed"]
    for argv in lines:
        run(argv)
        assert (readme_folder / argv[argv.index("--out") + 1] / "metrics.json").is_file()
