"""Label texts with a model that `lstmkit export` wrote, using only numpy, onnxruntime and its files.

    lstmkit export runs/m --format onnx --out runs/m-onnx
    python examples/onnx_predict.py runs/m-onnx "What a film." "Dull."
    python examples/onnx_predict.py runs/m-onnx --file reviews.txt --json   # one text per line

No JAX and nothing from lstmkit: the vectorizer below turns a text into the very ids lstmkit's
TextVectorizer gives (Keras's semantics: ASCII-only lowercasing, ASCII punctuation deleted, split on
the six ASCII blanks, unknown words -> 1, cut to export.json's max_length), and model.onnx does the
rest, the word-pair hash included. Copy this file into a project that has numpy and onnxruntime.

Each output line is `line<TAB>label<TAB>probability<TAB>text` (--json: one object per line, with
every class's probability; --ids: the ids of each text as a JSON list, nothing else).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import numpy as np
import onnxruntime

PUNCTUATION = b"!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"  # Keras's set, ASCII only
LOWER = bytes.maketrans(bytes(range(65, 91)), bytes(range(97, 123)))  # A-Z -> a-z, nothing else
IDENTITY = bytes(range(256))
HTML_BREAK = re.compile(r"<\s*br\s*/?\s*>", re.IGNORECASE)  # '<br />' -> ' ' when strip_html is on
PAD_ID, OOV_ID = 0, 1


class Vectorizer:
    """Texts to ids as the exported model's TextVectorizer (vectorizer.json, vocabulary.txt)."""

    def __init__(self, folder, max_length):
        config = json.loads((folder / "vectorizer.json").read_text(encoding="utf-8"))
        if config.get("split", "whitespace") != "whitespace" or config.get("ngrams") is not None:
            sys.exit(f"{folder}: this example reads whitespace-split vectorizers without n-grams only")
        mode = config.get("standardize")
        lower = mode in ("lower", "lower_and_strip_punctuation")
        strip = mode in ("strip_punctuation", "lower_and_strip_punctuation")
        self.table, self.delete = (LOWER if lower else IDENTITY), (PUNCTUATION if strip else b"")
        self.strip_html, self.max_length = bool(config.get("strip_html")), int(max_length)
        # One token per line from id 2 on; lines end at "\n" only (a token may hold other breaks).
        tokens = (folder / "vocabulary.txt").read_text(encoding="utf-8").split("\n")[:-1]
        self.index = {t.encode("utf-8", "surrogatepass"): i for i, t in enumerate(tokens, start=2)}

    def ids(self, text):
        """One text's ids, int64, unpadded."""
        if self.strip_html:
            text = HTML_BREAK.sub(" ", text)
        tokens = text.encode("utf-8", "surrogatepass").translate(self.table, self.delete).split()
        if self.max_length:
            tokens = tokens[: self.max_length]
        return np.array([self.index.get(t, OOV_ID) for t in tokens], np.int64)


def pad(rows):
    """Right-pad id arrays with 0 into (B, T), T >= 1 (an empty text is one padding step)."""
    out = np.full((len(rows), max(1, *(len(r) for r in rows))), PAD_ID, np.int64)
    for i, r in enumerate(rows):
        out[i, : len(r)] = r
    return out


def predict(session, ids, batch_size=64):
    """Probabilities (N, 1) or (N, K) for N id arrays, batched by length (little padding)."""
    order = np.argsort([len(r) for r in ids], kind="stable")
    out = [None] * len(ids)
    for start in range(0, len(ids), batch_size):
        chunk = order[start : start + batch_size]
        (proba,) = session.run(None, {"ids": pad([ids[i] for i in chunk])})
        for i, p in zip(chunk, proba):
            out[i] = p
    return np.stack(out) if out else np.zeros((0, 1), np.float32)


def label_rows(export, proba):
    """(label, its probability, every class's probability) per text, as `lstmkit predict` decides:
    two classes, the second when p >= 0.5; K classes, the likeliest; a multi-label model, every
    class whose p reaches its threshold, joined by "|" (with the likeliest one's probability)."""
    names = export["class_names"] or list(range(2 if export["binary"] else proba.shape[-1]))
    thresholds = export.get("thresholds")  # absent from exports made before it existed
    rows = []
    for p in proba.astype(np.float64):
        if thresholds:
            chosen = [str(n) for n, q in sorted(zip(names, p), key=lambda nq: -nq[1]) if q >= thresholds[str(n)]]
            rows.append(("|".join(chosen), float(p.max()), {str(n): float(q) for n, q in zip(names, p)}))
            continue
        every = np.array([1.0 - p[0], p[0]]) if export["binary"] else p
        k = int(p[0] >= 0.5) if export["binary"] else int(np.argmax(p))
        rows.append((names[k], float(every[k]), {str(name): float(q) for name, q in zip(names, every)}))
    return rows


def read_texts(args):
    if args.texts:
        return list(args.texts)
    raw = Path(args.file).read_text(encoding="utf-8") if args.file else sys.stdin.read()
    return [line for line in raw.split("\n") if line.strip()]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folder", type=Path, help="the folder `lstmkit export` wrote")
    parser.add_argument("texts", nargs="*", help="texts to label (default: --file or standard input, one per line)")
    parser.add_argument("--file", help="a text file, one text per line")
    parser.add_argument("--json", action="store_true", help="one JSON object per text")
    parser.add_argument("--ids", action="store_true", help="print each text's ids (a JSON list) and stop")
    args = parser.parse_args(argv)
    export = json.loads((args.folder / "export.json").read_text(encoding="utf-8"))
    vectorizer = Vectorizer(args.folder, export["max_length"])
    texts = read_texts(args)
    ids = [vectorizer.ids(t) for t in texts]
    if args.ids:
        for row in ids:
            print(json.dumps(row.tolist()))
        return
    session = onnxruntime.InferenceSession(str(args.folder / export["model_file"]), providers=["CPUExecutionProvider"])
    for line, (text, (label, p, every)) in enumerate(zip(texts, label_rows(export, predict(session, ids))), 1):
        if args.json:
            row = {"line": line, "text": text, "label": label, "probability": p, "probabilities": every}
            print(json.dumps(row, ensure_ascii=False))
        else:
            print(f"{line}\t{label}\t{p:.4f}\t{' '.join(text.split())[:80]}")


if __name__ == "__main__":
    main()
