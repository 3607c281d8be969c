"""A file vectorized by streaming: the vocabulary and ids in-memory vectorizing gives, cached by the
file's bytes and the settings, rebuilt when damaged, and bad input as one clear error."""

import numpy as np
import pytest

from helpers import synthetic_reviews
from lstmkit.data.corpus import load_corpus
from lstmkit.data.files import load_table
from lstmkit.data.text import TextVectorizer
from lstmkit.errors import LstmkitError


@pytest.fixture
def reviews(tmp_path):
    texts, labels = synthetic_reviews(700, seed=5)
    texts[3] = "Unicode: café <br />NAÏVE, but ok"  # non-ASCII, HTML breaks
    texts[10] = ""  # dropped, as load_table drops it
    path = tmp_path / "reviews.tsv"
    path.write_text("text\tlabel\n" + "".join(f"{t}\t{'pos' if y else 'neg'}\n" for t, y in zip(texts, labels)))
    return path


def _vectorizer():
    return TextVectorizer(max_tokens=12, output_sequence_length=6, strip_html=True)  # ties cut at max_tokens


def _every_third(labels, class_names):
    return np.arange(len(labels)) % 3 == 0


def test_vocabulary_and_ids_are_in_memory_vectorizings(reviews, tmp_path, recwarn, monkeypatch):
    monkeypatch.setattr("lstmkit.data.corpus.CHUNK_TEXTS", 64)  # many chunks
    ds = load_table(reviews, None, None)
    streamed = _vectorizer()
    corpus = load_corpus(reviews, {}, streamed, vocabulary_rows=_every_third, max_length=9, cache_dir=tmp_path / "c")
    in_memory = _vectorizer()
    in_memory.adapt(ds.texts[::3])
    assert streamed.vocabulary == in_memory.vocabulary and corpus.vocabulary == in_memory.vocabulary
    assert corpus.class_names == ds.class_names and corpus.labels.tolist() == ds.labels.tolist()
    assert corpus.empty == 1 and len(corpus.rows) == len(ds.texts) == 699
    expected = in_memory.encode_ragged(ds.texts, 9)
    assert all(r.tolist() == e.tolist() for r, e in zip(corpus.rows, expected))
    assert corpus.rows.lengths.tolist() == [len(e) for e in expected]


def test_a_second_run_opens_the_cache_and_a_damaged_one_is_rebuilt(reviews, tmp_path, recwarn, capsys):
    first = load_corpus(reviews, {}, _vectorizer(), vocabulary_rows=_every_third, cache_dir=tmp_path / "c")
    first_rows = [r.tolist() for r in first.rows]  # read now: the damage below is done to these very files
    (folder,) = (tmp_path / "c").iterdir()
    again_vectorizer = _vectorizer()
    again = load_corpus(reviews, {}, again_vectorizer, vocabulary_rows=_every_third, cache_dir=tmp_path / "c")
    assert not first.cached and again.cached and again_vectorizer.vocabulary == first.vocabulary
    other = load_corpus(reviews, {}, _vectorizer(), vocabulary_rows=lambda y, c: y == 1, cache_dir=tmp_path / "c")
    assert other.cached  # the key names the split (vocabulary_from), not the function: same key here
    split = load_corpus(
        reviews, {}, _vectorizer(), vocabulary_rows=_every_third, vocabulary_from={"seed": 1}, cache_dir=tmp_path / "c"
    )
    assert not split.cached and len(list((tmp_path / "c").iterdir())) == 2
    tokens = folder / "tokens.bin"
    tokens.write_bytes(tokens.read_bytes()[:-8])  # truncated
    rebuilt = load_corpus(reviews, {}, _vectorizer(), vocabulary_rows=_every_third, cache_dir=tmp_path / "c")
    assert not rebuilt.cached and "is damaged" in capsys.readouterr().out
    assert [r.tolist() for r in rebuilt.rows] == first_rows
    with open(reviews, "a") as f:
        f.write("one more text\tpos\n")  # other bytes: another key
    assert not load_corpus(reviews, {}, _vectorizer(), vocabulary_rows=_every_third, cache_dir=tmp_path / "c").cached


def test_a_given_vocabulary_encodes_without_adapting(reviews, tmp_path, recwarn):
    vectorizer = _vectorizer()
    vectorizer.set_vocabulary(["good", "bad", "movie"])
    corpus = load_corpus(reviews, {}, vectorizer, min_classes=1, cache_dir=tmp_path / "c")
    assert vectorizer.vocabulary == ["", "[UNK]", "good", "bad", "movie"]
    ds = load_table(reviews, None, None)
    assert [r.tolist() for r in corpus.rows[:5]] == [e.tolist() for e in vectorizer.encode_ragged(ds.texts[:5])]


def test_a_file_changed_while_it_is_read_is_refused(reviews, tmp_path, recwarn):
    def change_then_pick(labels, class_names):
        with open(reviews, "a") as f:
            f.write("a late text\tneg\n")
        return _every_third(labels, class_names)

    with pytest.raises(LstmkitError, match="changed while it was read"):
        load_corpus(reviews, {}, _vectorizer(), vocabulary_rows=change_then_pick, cache_dir=tmp_path / "c")
    assert not any((tmp_path / "c").glob("*"))  # nothing cached, no staging folder left


def test_labels_are_checked_as_load_table_checks_them(tmp_path):
    path = tmp_path / "one.csv"
    path.write_text("text,label\n" + "".join(f"text {i},pos\n" for i in range(5)))
    with pytest.raises(LstmkitError, match="every row has label 'pos'"):
        load_corpus(path, {}, _vectorizer(), vocabulary_rows=_every_third, cache_dir=tmp_path / "c")
    path.write_text("text,label\na,pos\nb,\nc,neg\n")
    with pytest.raises(LstmkitError, match="row 2: the label is empty"):
        load_corpus(path, {}, _vectorizer(), vocabulary_rows=_every_third, cache_dir=tmp_path / "c")
