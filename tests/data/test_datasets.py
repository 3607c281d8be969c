"""Datasets: IMDB counts and order, archives read safely, own files, splits, download with resume."""

import functools
import hashlib
import http.server
import io
import tarfile
import threading
import warnings

import numpy as np
import pytest

from lstmkit.data import imdb as imdb_module
from lstmkit.data.dataset import (
    Dataset,
    DataWarning,
    decode_text,
    parse_labels,
    train_val_split,
)
from lstmkit.data.imdb import imdb_groups, load_imdb, read_imdb
from lstmkit.data.sources import load_dataset
from lstmkit.data.tar import read_tar
from lstmkit.errors import LstmkitError

# ---- the real IMDB archives (read once per session: each read is ~2 s) ----------------------


@functools.cache
def _read(path, splits):
    return read_imdb(path, splits)


def test_imdb_labeled_counts_and_order(imdb_labeled):
    splits = _read(imdb_labeled, ("train", "test"))
    for name in ("train", "test"):
        ds = splits[name]
        assert len(ds) == 25_000 and ds.class_counts() == {"neg": 12_500, "pos": 12_500}
        assert ds.class_names == ["neg", "pos"] and set(np.unique(ds.labels)) == {0, 1}
        assert len(set(ds.ids)) == 25_000 and ds.empty == 0
        # Shuffled: no long runs of one label (class-sorted data would give one run of 12,500).
        runs = np.flatnonzero(np.diff(ds.labels[:2000]))
        assert len(runs) > 800
    assert not set(splits["train"].ids) & set(splits["test"].ids)


def test_imdb_seeded_order(imdb_labeled):
    a = _read(imdb_labeled, ("train", "test"))["train"]
    b = load_imdb(imdb_labeled, "train", seed=0)  # a second pass, reading one split only
    assert a.ids == b.ids and a.texts[:3] == b.texts[:3]
    c = a.shuffled(1)
    assert c.ids != a.ids and sorted(c.ids) == sorted(a.ids)


def test_imdb_unsup_counts(imdb_unsup):
    ds = _read(imdb_unsup, ("unsup",))["unsup"]
    assert len(ds) == 50_000 and np.all(ds.labels == -1)
    assert ds.class_counts()["unlabeled"] == 50_000


# ---- a small fake IMDB, as a folder and as an archive ---------------------------------------


def write_fake_imdb(root, n=6):
    """aclImdb/{train,test}/{pos,neg}/ID_RATING.txt and train/unsup, n reviews per folder."""
    for split in ("train", "test"):
        for cls, rating in (("neg", 2), ("pos", 9)):
            folder = root / "aclImdb" / split / cls
            folder.mkdir(parents=True)
            for i in range(n):
                (folder / f"{i}_{rating}.txt").write_text(f"{split} {cls} review {i}<br />end.", encoding="utf-8")
    unsup = root / "aclImdb" / "train" / "unsup"
    unsup.mkdir()
    for i in range(n):
        (unsup / f"{i}_0.txt").write_text(f"unlabeled {i}")
    (root / "aclImdb" / "README").write_text("readme")
    return root / "aclImdb"


def make_tar(path, root):
    with tarfile.open(path, "w:gz") as tar:
        tar.add(root, arcname="aclImdb")
    return path


def test_folder_and_archive_give_the_same_dataset(tmp_path):
    folder = write_fake_imdb(tmp_path)
    archive = make_tar(tmp_path / "aclImdb_v1.tar.gz", folder)
    for split in ("train", "test", "unsup"):
        a, b = load_imdb(folder, split, seed=3), load_imdb(archive, split, seed=3)
        assert a.texts == b.texts and a.ids == b.ids and np.array_equal(a.labels, b.labels)
    assert load_imdb(tmp_path, "test").class_counts() == {"neg": 6, "pos": 6}  # parent folder works
    ds = load_dataset(archive, split="test", seed=0)
    assert len(ds) == 12 and ds.class_names == ["neg", "pos"]


def test_imdb_split_missing_from_archive(tmp_path):
    folder = write_fake_imdb(tmp_path)
    for child in (folder / "train" / "unsup").iterdir():
        child.unlink()
    archive = make_tar(tmp_path / "labeled.tar.gz", folder)
    with pytest.raises(LstmkitError, match="no IMDB 'unsup' reviews.*aclImdb_unsup.tar.gz"):
        load_imdb(archive, "unsup")
    with pytest.raises(LstmkitError, match="unknown IMDB split"):
        load_imdb(archive, "validation")


def test_plain_tar_and_pax_long_names(tmp_path):
    long_dir = "x" * 120
    with tarfile.open(tmp_path / "a.tar", "w", format=tarfile.PAX_FORMAT) as tar:
        for name in ("aclImdb/train/pos/1_9.txt", f"{long_dir}/aclImdb/train/neg/2_1.txt"):
            data = b"hello"
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    assert [n for n, _ in read_tar(tmp_path / "a.tar")] == [
        "aclImdb/train/pos/1_9.txt",
        f"{long_dir}/aclImdb/train/neg/2_1.txt",
    ]
    with tarfile.open(tmp_path / "g.tar", "w", format=tarfile.GNU_FORMAT) as tar:
        info = tarfile.TarInfo("y" * 150 + ".txt")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"abc"))
    assert list(read_tar(tmp_path / "g.tar")) == [("y" * 150 + ".txt", b"abc")]


def _tar_with(path, member: tarfile.TarInfo, data=b""):
    with tarfile.open(path, "w:gz") as tar:
        ok = tarfile.TarInfo("aclImdb/train/pos/1_9.txt")
        ok.size = 2
        tar.addfile(ok, io.BytesIO(b"ok"))
        member.size = len(data) if member.isfile() else 0
        tar.addfile(member, io.BytesIO(data))
    return path


@pytest.mark.parametrize("name", ["/etc/passwd", "aclImdb/../../evil.txt", "../evil.txt", "C:/evil.txt"])
def test_archive_members_escaping_the_folder_are_refused(tmp_path, name):
    archive = _tar_with(tmp_path / "bad.tar.gz", tarfile.TarInfo(name), b"evil")
    with pytest.raises(LstmkitError, match="escape"):
        load_imdb(archive, "train")


@pytest.mark.parametrize("kind", [tarfile.SYMTYPE, tarfile.LNKTYPE])
def test_archive_links_are_refused(tmp_path, kind):
    link = tarfile.TarInfo("aclImdb/train/neg/2_1.txt")
    link.type = kind
    link.linkname = "/etc/passwd"
    archive = _tar_with(tmp_path / "link.tar.gz", link)
    with pytest.raises(LstmkitError, match="link"):
        load_imdb(archive, "train")


def test_folder_symlink_outside_is_refused(tmp_path):
    folder = write_fake_imdb(tmp_path / "d")
    (tmp_path / "secret.txt").write_text("secret")
    (folder / "train" / "pos" / "99_9.txt").symlink_to(tmp_path / "secret.txt")
    with pytest.raises(LstmkitError, match="outside"):
        load_imdb(folder, "train")


class _Zeros(io.RawIOBase):
    """n zero bytes, read lazily: a member that inflates to far more than its archive."""

    def __init__(self, n):
        self.left = n

    def readable(self):
        return True

    def readinto(self, b):
        k = min(len(b), self.left)
        b[:k] = bytes(k)
        self.left -= k
        return k


def _tar_with_zeros(path, name, size):
    with tarfile.open(path, "w:gz") as tar:
        for real in ("aclImdb/train/pos/1_9.txt", "aclImdb/train/neg/2_1.txt"):
            ok = tarfile.TarInfo(real)
            ok.size = 2
            tar.addfile(ok, io.BytesIO(b"ok"))
        big = tarfile.TarInfo(name)
        big.size = size
        tar.addfile(big, io.BufferedReader(_Zeros(size)))
    return path


def _peak_bytes(f):
    import tracemalloc

    tracemalloc.start()
    try:
        f()
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak


def test_a_member_that_inflates_past_the_cap_is_refused_before_it_is_read(tmp_path):
    """A small archive with a 100 MiB review: refused by its header, never buffered (it was, whole)."""
    archive = _tar_with_zeros(tmp_path / "bomb.tar.gz", "aclImdb/train/pos/3_9.txt", 100 << 20)
    assert archive.stat().st_size < 1 << 20

    def read():
        with pytest.raises(LstmkitError, match=r"over the 64 MiB a text file may have here"):
            load_imdb(archive, "train")

    assert _peak_bytes(read) < 8 << 20


def test_members_the_reader_does_not_need_stream_past(tmp_path):
    archive = _tar_with_zeros(tmp_path / "extra.tar.gz", "aclImdb/imdbEr.bin", 100 << 20)
    box = {}
    peak = _peak_bytes(lambda: box.update(ds=load_imdb(archive, "train", shuffle=False)))
    assert box["ds"].texts == ["ok", "ok"] and peak < 8 << 20


@pytest.mark.parametrize("record", [b"0 path=x\n", b"abc path=x\n", b"99 path=x\n"])
def test_bad_pax_records_are_one_error_not_a_hang(tmp_path, record):
    with tarfile.open(tmp_path / "pax.tar", "w", format=tarfile.USTAR_FORMAT) as tar:
        pax = tarfile.TarInfo("././@PaxHeader")
        pax.type, pax.size = tarfile.XHDTYPE, len(record)
        tar.addfile(pax, io.BytesIO(record))
        ok = tarfile.TarInfo("aclImdb/train/pos/1_9.txt")
        ok.size = 2
        tar.addfile(ok, io.BytesIO(b"ok"))
    with pytest.raises(LstmkitError, match="pax record has length"):
        list(read_tar(tmp_path / "pax.tar"))


def test_a_class_folder_linked_outside_is_refused(tmp_path):
    """train/neg -> a folder elsewhere made that folder's .txt files training data."""
    folder = write_fake_imdb(tmp_path / "d")
    outside = tmp_path / "etc"
    outside.mkdir()
    (outside / "5_1.txt").write_text("not a review")
    import shutil

    shutil.rmtree(folder / "train" / "neg")
    (folder / "train" / "neg").symlink_to(outside, target_is_directory=True)
    with pytest.raises(LstmkitError, match="outside"):
        load_imdb(folder, "train")
    own = tmp_path / "own"
    (own / "good").mkdir(parents=True)
    (own / "good" / "a.txt").write_text("fine")
    (own / "bad").symlink_to(outside, target_is_directory=True)
    with pytest.raises(LstmkitError, match="outside"):
        load_dataset(own)


def test_unreadable_and_missing_archives(tmp_path):
    (tmp_path / "junk.tar.gz").write_bytes(b"\x1f\x8b" + bytes(range(256)) * 4)
    with pytest.raises(LstmkitError, match="not a readable gzip"):
        load_imdb(tmp_path / "junk.tar.gz")
    (tmp_path / "junk.tar").write_bytes(b"not a tar" * 100)
    with pytest.raises(LstmkitError, match="not a readable tar"):
        load_imdb(tmp_path / "junk.tar")
    good = make_tar(tmp_path / "good.tar.gz", write_fake_imdb(tmp_path / "g"))
    (tmp_path / "cut.tar.gz").write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(LstmkitError, match="download it again"):
        load_imdb(tmp_path / "cut.tar.gz")
    with pytest.raises(LstmkitError, match="does not exist"):
        load_imdb(tmp_path / "nope.tar.gz")
    with pytest.raises(LstmkitError, match="does not exist"):
        load_dataset(tmp_path / "nope.csv")


# ---- decoding and the user's own files ------------------------------------------------------


def test_decode_counts_replacements():
    assert decode_text("ok é".encode()) == ("ok é", 0)
    text, bad = decode_text(b"a\xff\xfeb\xc3")
    assert text == b"a\xff\xfeb\xc3".decode("utf-8", "replace") and bad == 3


def test_non_utf8_bytes_warn_once_with_count(tmp_path):
    (tmp_path / "d.csv").write_bytes(b"text,label\ncaf\xe9 nice,pos\nbad \xff\xfe,neg\nfine,neg\n")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = load_dataset(tmp_path / "d.csv", shuffle=False)
    messages = [str(w.message) for w in caught if issubclass(w.category, DataWarning)]
    assert len(messages) == 1 and "3 undecodable" in messages[0]
    assert ds.replaced == 3 and ds.texts[0] == "caf\ufffd nice"


def test_csv_tsv_jsonl_autodetect(tmp_path):
    (tmp_path / "a.csv").write_text(
        'id,Review,Sentiment\n1,"good, really",pos\n2,bad,neg\n3,"multi\nline",pos\n', encoding="utf-8"
    )
    (tmp_path / "a.tsv").write_text("sentence\tlabel\ngood\t1\nbad\t0\nok\t1\n")
    (tmp_path / "a.jsonl").write_text('{"content": "good", "target": 1}\n\n{"content": "bad", "target": 0}\n')
    csv_ds = load_dataset(tmp_path / "a.csv", shuffle=False)
    assert csv_ds.texts == ["good, really", "bad", "multi\nline"] and csv_ds.labels.tolist() == [1, 0, 1]
    assert csv_ds.class_names == ["neg", "pos"]
    tsv_ds = load_dataset(tmp_path / "a.tsv", shuffle=False)
    assert tsv_ds.class_names == ["0", "1"] and tsv_ds.labels.tolist() == [1, 0, 1]
    js = load_dataset(tmp_path / "a.jsonl", shuffle=False)
    assert js.texts == ["good", "bad"] and js.labels.tolist() == [1, 0]


def test_chosen_columns_and_missing_column(tmp_path):
    (tmp_path / "a.csv").write_text("body,stars,other\ngood,5,x\nbad,1,y\n")
    ds = load_dataset(tmp_path / "a.csv", text_column="body", label_column="stars", shuffle=False)
    assert ds.class_names == ["1", "5"] and ds.labels.tolist() == [1, 0]
    with pytest.raises(LstmkitError, match="no label column.*--label-column"):
        load_dataset(tmp_path / "a.csv")
    with pytest.raises(LstmkitError, match="no column 'txt'.*body, stars, other"):
        load_dataset(tmp_path / "a.csv", text_column="txt", label_column="stars")


def test_multiclass_labels_sort_deterministically():
    labels, names = parse_labels(["10", "9", "2", 9, 2.0])
    assert names == ["2", "9", "10"] and labels.tolist() == [2, 1, 0, 1, 0]
    labels, names = parse_labels(["sports", "art", "news", "art"])
    assert names == ["art", "news", "sports"] and labels.tolist() == [2, 0, 1, 0]
    assert parse_labels([True, False])[1] == ["false", "true"]


@pytest.mark.parametrize("values,match", [
    (["pos", "pos"], "one class"),
    (["pos", ""], "empty"),
    (["pos", None], "empty"),
    (["0.5", "1"], "whole number"),
    ([[1], 0], "is a list of labels, which is multi-label"),
    ([str(i) for i in range(40)], "looks like a text column"),
])  # fmt: skip
def test_bad_labels(values, match):
    with pytest.raises(LstmkitError, match=match):
        parse_labels(values)


def test_empty_texts_are_dropped_with_a_count(tmp_path):
    (tmp_path / "a.csv").write_text("text,label\ngood,1\n,0\n   ,1\nbad,0\n")
    with pytest.warns(DataWarning, match="dropped 2 empty texts of 4"):
        ds = load_dataset(tmp_path / "a.csv", shuffle=False)
    assert ds.texts == ["good", "bad"] and ds.empty == 2


def test_empty_datasets(tmp_path):
    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "header.csv").write_text("text,label\n")
    (tmp_path / "blank.csv").write_text("text,label\n,1\n,0\n")
    for name in ("empty.csv", "header.csv", "blank.csv"):
        with pytest.raises(LstmkitError, match="empty"):
            load_dataset(tmp_path / name)
    (tmp_path / "classes").mkdir()
    (tmp_path / "classes" / "a").mkdir()
    with pytest.raises(LstmkitError, match="no .txt files"):
        load_dataset(tmp_path / "classes")


def test_malformed_files(tmp_path):
    (tmp_path / "a.jsonl").write_text('{"text": "a", "label": 1}\n{"text": oops}\n')
    with pytest.raises(LstmkitError, match="line 2 is not valid JSON"):
        load_dataset(tmp_path / "a.jsonl")
    (tmp_path / "b.csv").write_text("text,label\na,1,extra\n")
    with pytest.raises(LstmkitError, match="3 fields where the header has 2"):
        load_dataset(tmp_path / "b.csv")
    (tmp_path / "c.parquet").write_text("x")
    with pytest.raises(LstmkitError, match="unknown file type"):
        load_dataset(tmp_path / "c.parquet")
    (tmp_path / "d.csv").write_text("text,label\na,1\n")
    with pytest.raises(LstmkitError, match="no predefined 'test' split"):
        load_dataset(tmp_path / "d.csv", split="test")


def test_class_folders(tmp_path):
    for cls, texts in (("sport", ["goal", "match"]), ("art", ["paint"]), ("music", ["song", "drum", "band"])):
        (tmp_path / cls / "sub").mkdir(parents=True)
        for i, t in enumerate(texts):
            (tmp_path / cls / ("sub" if i == 2 else "") / f"{i}.txt").write_text(t)
    (tmp_path / "music" / "notes.md").write_text("ignored")
    ds = load_dataset(tmp_path, seed=0)
    assert ds.class_names == ["art", "music", "sport"]
    assert ds.class_counts() == {"art": 1, "music": 3, "sport": 2}
    assert sorted(zip(ds.texts, ds.labels.tolist())) == [
        ("band", 1),
        ("drum", 1),
        ("goal", 2),
        ("match", 2),
        ("paint", 0),
        ("song", 1),
    ]
    single = tmp_path / "single"
    (single / "only").mkdir(parents=True)
    (single / "only" / "a.txt").write_text("x")
    (single / "other").mkdir()
    with pytest.raises(LstmkitError, match="at least two classes"):
        load_dataset(single)


def test_train_val_split_is_stratified_and_seeded():
    labels = np.array([0] * 80 + [1] * 20 + [2] * 10)
    ds = Dataset([f"t{i}" for i in range(len(labels))], labels, ["a", "b", "c"])
    train, val = train_val_split(ds, 0.1, seed=5)
    assert len(train) + len(val) == len(ds)
    assert sorted(train.texts + val.texts) == sorted(ds.texts)
    assert np.bincount(val.labels).tolist() == [8, 2, 1]
    again = train_val_split(ds, 0.1, seed=5)[1]
    assert again.texts == val.texts
    assert train_val_split(ds, 0.1, seed=6)[1].texts != val.texts
    with pytest.raises(LstmkitError):
        train_val_split(ds, 1.0)


# ---- download: a local server with Range support stands in for Stanford's -------------------


class _Server:
    """Serves `payload` on 127.0.0.1; honours Range; can cut the first response short."""

    def __init__(self, payload, cut_after=None):
        self.payload, self.cut_after, self.requests = payload, cut_after, []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                rng = self.headers.get("Range")
                server.requests.append(rng)
                start = int(rng.split("=")[1].rstrip("-")) if rng else 0
                body = server.payload[start:]
                self.send_response(206 if rng else 200)
                if rng:
                    self.send_header("Content-Range", f"bytes {start}-{len(server.payload) - 1}/{len(server.payload)}")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if server.cut_after is not None:
                    body, server.cut_after = body[: server.cut_after], None
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/aclImdb_v1.tar.gz"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def fake_archive(tmp_path):
    archive = make_tar(tmp_path / "src.tar.gz", write_fake_imdb(tmp_path / "src"))
    return archive.read_bytes()


def _serve(monkeypatch, payload, cut_after=None, digest=None):
    server = _Server(payload, cut_after)
    monkeypatch.setattr(imdb_module, "IMDB_URL", server.url)
    monkeypatch.setattr(imdb_module, "IMDB_SHA256", digest or hashlib.sha256(payload).hexdigest())
    return server


def test_download_verify_and_cache(tmp_path, monkeypatch, fake_archive):
    server = _serve(monkeypatch, fake_archive)
    try:
        path = imdb_module.download_imdb(tmp_path / "cache", progress=False)
        assert path.read_bytes() == fake_archive and server.requests == [None]
        assert imdb_module.download_imdb(tmp_path / "cache", progress=False) == path
        assert len(server.requests) == 1  # the verified cache is used
    finally:
        server.close()


def test_download_resumes_after_interruption(tmp_path, monkeypatch, fake_archive):
    server = _serve(monkeypatch, fake_archive, cut_after=len(fake_archive) // 3)
    try:
        with pytest.raises(LstmkitError, match="run again to resume"):
            imdb_module.download_imdb(tmp_path, progress=False)
        part = tmp_path / "aclImdb_v1.tar.gz.part"
        assert part.stat().st_size == len(fake_archive) // 3
        path = imdb_module.download_imdb(tmp_path, progress=False)
        assert server.requests == [None, f"bytes={len(fake_archive) // 3}-"]
        assert path.read_bytes() == fake_archive and not part.exists()
    finally:
        server.close()


def test_download_checksum_mismatch(tmp_path, monkeypatch, fake_archive):
    server = _serve(monkeypatch, fake_archive, digest="0" * 64)
    try:
        with pytest.raises(LstmkitError, match="SHA-256"):
            imdb_module.download_imdb(tmp_path / "cache", progress=False)
        assert not list((tmp_path / "cache").iterdir())
    finally:
        server.close()


def test_download_offline_says_how_to_pass_a_local_copy(tmp_path, monkeypatch):
    server = _Server(b"")
    url = server.url
    server.close()  # nothing listens there any more
    monkeypatch.setattr(imdb_module, "IMDB_URL", url)
    with pytest.raises(LstmkitError, match="--data path/to/aclImdb_v1.tar.gz"):
        imdb_module.download_imdb(tmp_path, progress=False, timeout=2)


def test_load_dataset_imdb_downloads_into_lstmkit_home(tmp_path, monkeypatch, fake_archive):
    server = _serve(monkeypatch, fake_archive)
    monkeypatch.setenv("LSTMKIT_HOME", str(tmp_path / "home"))
    try:
        ds = load_dataset("imdb", split="train", seed=0)
        assert len(ds) == 12 and (tmp_path / "home" / "datasets" / "aclImdb_v1.tar.gz").exists()
        assert len(load_dataset("imdb", split="unsup")) == 6
    finally:
        server.close()


def test_grouped_split_keeps_groups_whole_and_stays_stratified():
    ids = [f"train/{'pos' if i % 2 else 'neg'}/{i // 2}_7.txt" for i in range(3000)]
    ds = Dataset([str(i) for i in range(3000)], np.array([i % 2 for i in range(3000)]), ["neg", "pos"], ids=ids)
    groups = imdb_groups(ds, size=100)
    assert groups[:4] == ["train/neg/0", "train/pos/0", "train/neg/0", "train/pos/0"]
    train, val = train_val_split(ds, 0.1, seed=1, groups=groups)
    assert len(train) + len(val) == 3000 and sorted(train.texts + val.texts, key=int) == ds.texts
    assert not set(imdb_groups(train, 100)) & set(imdb_groups(val, 100))  # no group on both sides
    assert val.class_counts() == {"neg": 200, "pos": 200}  # a share of 150 is 1.5 groups of 100: two whole groups
    again, _ = train_val_split(ds, 0.1, seed=1, groups=groups)
    assert again.texts == train.texts
    assert imdb_groups(Dataset(["a"], np.array([0]), ["x"], ids=["row 1"])) is None
