"""Files as people have them: no header, no or a misleading extension, fastText lines, spreadsheet
exports (BOM, semicolons, CRLF), gzip; the same for unlabeled text and for texts to predict.

Every file is written here, byte by byte, so the expected texts and labels are the ones written."""

import gzip

import pytest

from lstmkit.data.formats import delimiter_of, sniff_format, suffix_format
from lstmkit.data.inputs import file_texts, text_format
from lstmkit.data.sources import load_dataset
from lstmkit.data.tables import first_row_is_header
from lstmkit.data.unlabeled import read_unlabeled
from lstmkit.errors import LstmkitError

# The SMS spam collection's layout: label TAB text, no header, no extension; one text opens a
# quote that it never closes, as in the real file.
SMS = [
    ("ham", "Go until jurong point, crazy.. Available only in bugis n great world"),
    ("ham", "Ok lar... Joking wif u oni..."),
    ("spam", '"Free entry in 2 a wkly comp to win FA Cup final tkts 21st May'),
    ("ham", "U dun say so early hor... U c already then say..."),
    ("spam", "WINNER!! As a valued network customer you have been selected"),
    ("ham", "Nah I don't think he goes to usf, he lives around here though"),
]


@pytest.fixture
def sms(tmp_path):
    path = tmp_path / "SMSSpamCollection"
    path.write_bytes("".join(f"{label}\t{text}\n" for label, text in SMS).encode())
    return path


def test_headerless_tsv_without_extension(sms, capsys):
    ds = load_dataset(sms, shuffle=False)
    assert ds.texts == [text for _, text in SMS]  # the open quote stays in its own line's text
    assert ds.class_names == ["ham", "spam"] and ds.labels.tolist() == [0, 0, 1, 0, 1, 0]
    assert "no header row; the text is column 1, the label column 0" in capsys.readouterr().out
    by_index = load_dataset(sms, text_column="1", label_column="0", header=False, file_format="tsv", shuffle=False)
    assert by_index.texts == ds.texts and by_index.labels.tolist() == ds.labels.tolist()


def test_columns_by_index_on_a_file_with_a_header(tmp_path):
    (tmp_path / "a.csv").write_text("v1,v2\nham,see you soon\nspam,win a prize\n")
    ds = load_dataset(tmp_path / "a.csv", text_column="1", label_column="0", shuffle=False)
    assert ds.texts == ["see you soon", "win a prize"] and ds.class_names == ["ham", "spam"]
    with pytest.raises(LstmkitError, match="no column '5'.*a name or a 0-based index with --text-column"):
        load_dataset(tmp_path / "a.csv", text_column="5", label_column="0")


@pytest.mark.parametrize(
    "first,below,expected",
    [
        (["label", "text"], [["pos", "fine"]], True),  # a known column name
        (["v1", "v2"], [["ham", "hi"], ["spam", "win"]], True),  # short, unknown names
        (["ham", "hi there"], [["ham", "x y"], ["spam", "z"], ["ham", "w"]], False),  # a label seen below
        (["1", "fine"], [["0", "bad"], ["1", "good"]], False),  # a number over numbers
        (["x", "this film was a lovely surprise from start to end"], [["y", "z"]], False),  # prose
        (["x", "fine, really"], [["y", "z"]], False),  # punctuation between words: a sentence
        (["Review Text", "rating (1-5)"], [["fine", "4"]], True),
    ],
)
def test_first_row_is_header(first, below, expected):
    assert first_row_is_header(first, below) is expected


def test_no_header_said_and_a_header_said(tmp_path):
    path = tmp_path / "a.tsv"
    path.write_text("label\ttext\npos\tgood\nneg\tbad\n")
    ds = load_dataset(path, header=True, shuffle=False)
    assert ds.texts == ["good", "bad"]
    # read as data, the header row becomes an example of its own class, 'label'
    forced = load_dataset(path, header=False, text_column="1", label_column="0", shuffle=False)
    assert forced.class_names == ["label", "neg", "pos"] and forced.texts[0] == "text"


def test_fasttext_one_label_per_line(tmp_path):
    path = tmp_path / "cooking.train"
    path.write_text("__label__baking How do I make bread rise?\n\n__label__knives  Which knife for onions?\r\n")
    ds = load_dataset(path, shuffle=False)
    assert ds.texts == ["How do I make bread rise?", "Which knife for onions?"]
    assert ds.class_names == ["baking", "knives"] and ds.labels.tolist() == [0, 1]


def test_fasttext_several_labels_are_label_sets_and_none_is_one_clear_line(tmp_path):
    path = tmp_path / "multi.txt"
    path.write_text("__label__a one\n__label__b __label__c two\n")
    ds = load_dataset(path, shuffle=False)
    assert ds.multi_label and ds.class_names == ["a", "b", "c"] and ds.labels.tolist() == [[1, 0, 0], [0, 1, 1]]
    path.write_text("__label__a one\nno label here\n")
    with pytest.raises(LstmkitError, match="line 2 has no __label__ label"):
        load_dataset(path)


def test_json_lines_with_a_list_of_labels_is_multi_label(tmp_path):
    (tmp_path / "m.jsonl").write_text('{"text": "a", "label": "x"}\n{"text": "b", "label": ["x", "y"]}\n')
    ds = load_dataset(tmp_path / "m.jsonl", shuffle=False)
    assert ds.class_names == ["x", "y"] and ds.labels.tolist() == [[1, 0], [1, 1]]
    with pytest.raises(LstmkitError, match="row 2: label \\['x', 'y'\\] is a list of labels, which is multi-label"):
        load_dataset(tmp_path / "m.jsonl", shuffle=False, multi_label=False)


def test_spreadsheet_export_bom_semicolons_crlf(tmp_path):
    path = tmp_path / "export.csv"
    rows = ["label;text", 'pos;"fine; really ""good"""', 'neg;"two\r\nlines, bad"', "pos;lovely"]
    path.write_bytes(b"\xef\xbb\xbf" + "\r\n".join(rows).encode() + b"\r\n")
    ds = load_dataset(path, shuffle=False)
    assert ds.texts == ['fine; really "good"', "two\r\nlines, bad", "lovely"]
    assert ds.class_names == ["neg", "pos"] and ds.labels.tolist() == [1, 0, 1]


@pytest.mark.parametrize(
    "name,content",
    [
        ("a.csv.gz", "text,label\ngood,1\nbad,0\n"),
        ("a.tsv.gz", "text\tlabel\ngood\t1\nbad\t0\n"),
        ("a.jsonl.gz", '{"text": "good", "label": 1}\n{"text": "bad", "label": 0}\n'),
        ("a.txt.gz", "__label__1 good\n__label__0 bad\n"),
        ("noext", "text,label\ngood,1\nbad,0\n"),  # gzip known by its bytes, not its name
    ],
)
def test_gzip(tmp_path, name, content):
    (tmp_path / name).write_bytes(gzip.compress(content.encode()))
    ds = load_dataset(tmp_path / name, shuffle=False)
    assert ds.texts == ["good", "bad"] and ds.labels.tolist() == [1, 0]


def test_misleading_extensions_are_read_for_what_they_hold(tmp_path):
    (tmp_path / "tabs.csv").write_text("label\ttext\npos\tfine, really\nneg\tbad, sadly\n")
    (tmp_path / "lines.csv").write_text('{"text": "fine", "label": "pos"}\n{"text": "bad", "label": "neg"}\n')
    (tmp_path / "table.txt").write_text("label,text\npos,fine\nneg,bad\n")
    for name in ("tabs.csv", "lines.csv", "table.txt"):
        ds = load_dataset(tmp_path / name, shuffle=False)
        assert ds.class_names == ["neg", "pos"] and ds.labels.tolist() == [1, 0], name
    assert suffix_format(tmp_path / "x.TSV.gz") == "tsv" and suffix_format(tmp_path / "x") is None


def test_format_said_wins(tmp_path):
    path = tmp_path / "data"
    path.write_text("pos\tfine, ok\nneg\tbad, no\n")
    ds = load_dataset(path, file_format="tsv", text_column="1", label_column="0", shuffle=False)
    assert ds.texts == ["fine, ok", "bad, no"]
    with pytest.raises(LstmkitError, match="--format txt is one text per line, with no labels"):
        load_dataset(path, file_format="txt")


def test_sniffing():
    assert sniff_format('[{"text": "a"}]', None) == "jsonl"
    assert sniff_format("__label__x hi\n", "csv") == "fasttext"
    assert sniff_format("a|b\nc|d\n", None) == "csv" and delimiter_of("a|b\nc|d\n", None) == "|"
    assert sniff_format("just some words\nmore words\n", None) is None
    # the csv module's quoting: a quoted comma does not split, so the rows still agree
    assert delimiter_of('text,label\n"a, b",1\nc,0\n', "csv") == ","


@pytest.mark.parametrize(
    "name,content,match",
    [
        ("blob", b"PK\x03\x04\x00\x00binary", "unknown file type \\(binary content"),
        ("words", b"one text\nanother text\n", "unknown file type .*--format csv\\|tsv\\|jsonl\\|fasttext"),
        ("both", b"a\tb,c\nd\te,f\n", "split evenly at both '\\\\t' and ','.*--format tsv.*--format csv"),
        ("broken.csv.gz", gzip.compress(b"text,label\n", mtime=0)[:-6], "damaged gzip file"),
        ("named.csv", b"alpha,beta\nfine,pos\nbad,neg\n", "no text column found among alpha, beta.*--no-header"),
    ],
)
def test_unreadable_or_ambiguous_files_are_one_clear_line(tmp_path, name, content, match):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(LstmkitError, match=match) as caught:
        load_dataset(tmp_path / name)
    assert "\n" not in str(caught.value)


def test_unlabeled_sources(tmp_path, sms):
    (tmp_path / "u.ft").write_text("__label__a __label__b first text\n__label__c second\n")
    assert read_unlabeled(tmp_path / "u.ft") == ["first text", "second"]  # several labels are fine here
    assert read_unlabeled(sms) == [text for _, text in SMS]  # the longest cells are the texts
    (tmp_path / "u.txt.gz").write_bytes(gzip.compress("\ufeffone, two\tthree\n\nfour\n".encode()))
    assert read_unlabeled(tmp_path / "u.txt.gz") == ["one, two\tthree", "four"]  # .txt: lines, tabs or not
    (tmp_path / "notes").write_text("a line, with a comma\nanother, with one\n")
    assert read_unlabeled(tmp_path / "notes") == ["a line, with a comma", "another, with one"]
    (tmp_path / "u.csv").write_bytes(b"\xef\xbb\xbfid;review\r\n1;nice\r\n2;grim\r\n")
    assert read_unlabeled(tmp_path / "u.csv") == ["nice", "grim"]


def test_texts_to_predict(tmp_path, sms):
    assert text_format(sms) == "tsv"
    assert [text for _, text in file_texts(sms)] == [text for _, text in SMS]
    (tmp_path / "t.txt").write_text("a\tb\nc\td\n")
    assert text_format(tmp_path / "t.txt") == "txt" and [t for _, t in file_texts(tmp_path / "t.txt")] == [
        "a\tb",
        "c\td",
    ]
    (tmp_path / "t.jsonl.gz").write_bytes(gzip.compress(b'{"id": "x1", "body": "fine"}\n{"id": "x2", "body": "bad"}\n'))
    rows = list(file_texts(tmp_path / "t.jsonl.gz", text_column="body", id_column="id"))
    assert rows == [("x1", "fine"), ("x2", "bad")]
    rows = list(file_texts(sms, file_format="tsv", header=False, text_column="1", id_column="0"))
    assert rows[2] == ("spam", SMS[2][1])
