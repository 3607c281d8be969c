"""`lstmkit inspect` on files written here: a 95/5 CSV with copies, a conflicting label, an empty and
a very long text, a test file that shares texts with it, and an IMDB-layout archive."""

import json
import subprocess
import sys
import tarfile

import pytest
from click.testing import CliRunner

from lstmkit.cli import main


def _review(i):
    return f"review number {i} was {'bad' if i >= 95 else 'good'}"  # 5 tokens; 95 good, 5 bad


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("inspect")
    rows = [(_review(i), "neg" if i >= 95 else "pos") for i in range(100)]
    rows += [(_review(0), "pos"), (_review(1), "neg")]  # rows 101, 102: a copy, and a copy with another label
    rows += [("   ", "pos"), (" ".join(["word"] * 3000), "pos")]  # rows 103, 104: empty, very long
    (root / "train.csv").write_text("text,label\n" + "".join(f'"{t}",{y}\n' for t, y in rows))
    test = [(_review(2), "pos"), (_review(96), "pos"), ("a brand new text", "pos"), ("another unseen one", "neg")]
    (root / "test.csv").write_text("text,label\n" + "".join(f'"{t}",{y}\n' for t, y in test))
    return root


def _inspect(*args):
    result = CliRunner().invoke(main, ["inspect", *map(str, args)])
    assert result.exit_code == 0, result.output
    return result.stdout


def test_the_report_counts_what_the_files_hold(files):
    r = json.loads(_inspect(files / "train.csv", "--test-data", files / "test.csv", "--sequence-length", 100, "--json"))
    assert r["schema_version"] == 1 and r["settings"]["sequence_length"] == 100
    train, test = r["splits"]["train"], r["splits"]["test"]
    assert (train["n"], train["empty_dropped"], test["n"]) == (103, 1, 4)
    assert {c: v["count"] for c, v in train["labels"].items()} == {"neg": 6, "pos": 97}
    assert train["labels"]["neg"]["share"] == pytest.approx(6 / 103)
    assert (train["lengths"]["median"], train["lengths"]["max"]) == (5, 3000)
    assert train["lengths"]["cut"]["texts"] == 1 and train["lengths"]["cut"]["tokens"] == 2900
    assert train["very_long"]["count"] == 1 and train["very_long"]["where"] == ["104"]
    d = train["duplicates"]
    assert (d["repeated"], d["groups"], d["conflicting"]) == (2, 2, 1)
    assert d["examples"][0]["where"] == ["2", "102"]  # the conflicting copy first
    a = r["across"]
    assert (a["in_train"], a["conflicting"], a["share"]) == (2, 1, 0.5)
    codes = [w["code"] for w in r["warnings"]]
    assert codes == ["imbalance", "leakage", "duplicates", "conflicting_labels", "empty", "very_long", "oov_shift"]


def test_each_warning_is_one_line_with_its_fix(files):
    out = _inspect(files / "train.csv", "--test-data", files / "test.csv")
    lines = out.splitlines()
    expected = {
        "imbalance": "class 'neg' is 5.8% of train (6 of 103 texts, under 10%)",
        "leakage": "test shares 2 of its 4 texts (50.0%) with train",
        "duplicates": "train: 2 copies of earlier texts",
        "conflicting_labels": "train: 1 text present with different labels (e.g. rows 2, 102: neg, pos)",
        "empty": "train: 1 empty or whitespace-only text",
        "very_long": "train: 1 text over 800 tokens",
    }
    fixes = {
        "imbalance": "--class-weight balanced",
        "leakage": "remove them from the test data",
        "duplicates": "keep one copy of each",
        "conflicting_labels": "fix their labels",
        "empty": "fill in the text",
        "very_long": "check that each is one text",
    }
    for code, says in expected.items():
        line = next(line for line in lines if line.strip().startswith(code + ":"))
        assert says in line and fixes[code] in line, line
    assert "tokens outside it ([UNK]): train 0.00%" in out


def test_max_tokens_sets_the_vocabulary_and_the_unknown_rate(files):
    r = json.loads(_inspect(files / "train.csv", "--max-tokens", 5, "--json"))
    assert r["vocabulary"]["learned"] == 3 and "test" not in r["splits"] and "across" not in r
    # review, number, was, good, bad, word and the numbers 0 to 99
    assert r["vocabulary"]["distinct"] == 6 + 100
    # kept: 'word' (3,000 times) and two of 'review', 'number', 'was' (102 times each), of 102 * 5 + 3,000 tokens
    assert r["splits"]["train"]["oov"]["tokens"] == 102 * 5 + 3000 - 3000 - 2 * 102


def test_a_balanced_clean_file_has_no_warnings(tmp_path):
    path = tmp_path / "clean.csv"
    path.write_text("text,label\n" + "".join(f"a fine film {i},pos\na poor film {i},neg\n" for i in range(20)))
    assert _inspect(path).rstrip().endswith("no warnings")


def test_an_imdb_archive_brings_its_own_test_split(tmp_path):
    tree = tmp_path / "aclImdb"
    reviews = {
        "train/pos/0_9.txt": "A fine film.<br /><br />Really.",
        "train/neg/1_2.txt": "A dull film.",
        "test/pos/2_8.txt": "A fine film.<br /><br />Really.",
        "test/neg/3_1.txt": "Dull, dull, dull.",
    }
    for name, text in reviews.items():
        (tree / name).parent.mkdir(parents=True, exist_ok=True)
        (tree / name).write_text(text)
    with tarfile.open(tmp_path / "imdb.tar.gz", "w:gz") as tar:
        tar.add(tree, arcname="aclImdb")
    r = json.loads(_inspect(tmp_path / "imdb.tar.gz", "--json"))
    assert r["splits"]["train"]["n"] == 2 and r["splits"]["test"]["n"] == 2
    assert r["splits"]["train"]["lengths"]["max"] == 4  # '<br />' removed, as the default preset does
    assert r["across"]["in_train"] == 1 and r["across"]["examples"][0]["train_where"] == ["train/pos/0_9.txt"]
    keep_html = json.loads(_inspect(tmp_path / "imdb.tar.gz", "--no-strip-html", "--json"))
    assert keep_html["splits"]["train"]["lengths"]["max"] == 5  # a fine filmbr br really
    assert keep_html["settings"]["strip_html"] is False


def test_inspect_runs_without_jax(files):
    probe = (
        "import sys\nfrom lstmkit.cli import main\n"
        "try:\n    main(sys.argv[1:], prog_name='lstmkit')\nexcept SystemExit as e:\n    code = e.code\n"
        "print('exit', code, 'jax' if 'jax' in sys.modules else 'no-jax', file=sys.stderr)\n"
    )
    args = ["inspect", str(files / "train.csv"), "--test-data", str(files / "test.csv")]
    done = subprocess.run([sys.executable, "-c", probe, *args], capture_output=True, text=True, timeout=120)
    assert done.stderr.strip().splitlines()[-1] == "exit 0 no-jax", done.stderr
    assert "leakage:" in done.stdout
