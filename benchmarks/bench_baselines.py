"""Bag-of-n-grams baselines on IMDB: what a practitioner would train instead of an LSTM.

    python benchmarks/bench_baselines.py                      # all four
    python benchmarks/bench_baselines.py --only nbsvm-bigrams,fasttext-bigrams --json out.json

Each baseline trains on the 25,000 IMDB train reviews and is scored once on the 25,000 test
reviews. It prints one line per baseline: test accuracy and wall time, which covers everything
after loading (tokenizing, counting n-grams, choosing a hyperparameter where one is chosen,
fitting, predicting the test set); the loading time (reading and decoding the archive) is
printed once, above them. Needs scikit-learn and fastText (benchmarks/requirements-bench.txt:
the fasttext-wheel 0.9.2 build, see fasttext_distribution for why not fasttext 0.9.3).

Tokens (all baselines): lowercase, `<br />` replaced by a space, then words (runs of letters,
digits and _, with inner apostrophes kept: "don't") and every other non-space character as a
token of its own ("!!" is two "!").

- nbsvm-bigrams, nbsvm-trigrams: NBSVM (Wang and Manning 2012), binarized 1-2-gram (1-3-gram)
  counts x, log-count ratio r = log((p/|p|1) / (q/|q|1)) with p = 1 + sum of x over positive
  reviews, q the same over negative ones (alpha = 1), features x * r. Classifier:
  LogisticRegression(solver="liblinear", C=1), as in Mesnil et al. 2014's public nbsvm.py
  (LIBLINEAR -s 0, its default C=1; that script takes r from raw counts and fits no intercept);
  published: 91.22% (bigrams, Wang and Manning), 91.87% (trigrams, Mesnil et al.). `--nbsvm-classifier svm`
  uses Wang and Manning's own: LinearSVC(C=1) (L2-regularized squared hinge, LIBLINEAR's
  default) with the interpolation w' = (1 - beta) * mean(|w|) + beta * w, beta = 0.25, the
  intercept kept.
- tfidf-lr: TfidfVectorizer(1-2-grams, min_df=2, max_df=0.9, sublinear_tf=True, l2 norm) and
  LogisticRegression(liblinear), C chosen from 1, 3, 10, 30 by accuracy on a validation split
  carved from train (10% of the movies, seed 0, `lstmkit.data.dataset.train_val_split` with
  `imdb_groups`), then refit on all of train.
- fasttext-bigrams: fastText supervised (Joulin et al. 2016's setting for sentiment: 10
  dimensions, 5 epochs, wordNgrams=2, softmax loss, learning rate chosen from 0.05, 0.1, 0.25,
  0.5 on the same validation split, then refit on all of train), thread=1 and seed=0, so a
  rerun gives the same model. (fastText initializes only a tenth of its input matrix per
  thread, the first tenth with thread=1; the rest starts at zero. That is fastText's own
  behaviour at thread=1, kept here for the determinism.)

No choice is made on the test set: NBSVM uses its published fixed settings, and the other two
choose on the validation split.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from importlib.metadata import version
from pathlib import Path

import numpy as np

from lstmkit.data.dataset import Dataset, train_val_split
from lstmkit.data.imdb import imdb_groups, read_imdb
from train_data import find_imdb  # the same lookup as bench_train's

SEED = 0
VAL_FRACTION = 0.1
TFIDF_C_GRID = (1.0, 3.0, 10.0, 30.0)
FASTTEXT_LR_GRID = (0.05, 0.1, 0.25, 0.5)
WANG_MANNING_BETA = 0.25

LINE_BREAK = re.compile(r"<br\s*/?>", re.IGNORECASE)
TOKEN = re.compile(r"\w+(?:'\w+)*|[^\w\s]")


def tokenize(text: str) -> list[str]:
    """Lowercased words (inner apostrophes kept) and single punctuation characters, `<br />` dropped."""
    return TOKEN.findall(LINE_BREAK.sub(" ", text).lower())


@dataclass
class Result:
    name: str
    accuracy: float
    seconds: float  # everything after loading: select_s + fit_s + predict_s
    select_s: float  # choosing a hyperparameter on the validation split (0 for NBSVM)
    fit_s: float  # the final fit on all of train, tokenizing and counting included
    predict_s: float  # predicting the test set, tokenizing and counting included
    features: int  # n-grams in the vocabulary (fastText: words; its n-grams are hashed into buckets)
    setting: str
    choice: dict = field(default_factory=dict)  # {setting: validation accuracy} where one was chosen


# ---- data -----------------------------------------------------------------------------------


def load_reviews(imdb: Path) -> tuple[Dataset, Dataset, float]:
    """The train and test reviews (labels neg=0 / pos=1, shuffled with seed 0) and the seconds it took."""
    t0 = time.perf_counter()
    splits = read_imdb(imdb, ("train", "test"), seed=SEED)
    return splits["train"], splits["test"], time.perf_counter() - t0


def validation_split(train: Dataset) -> tuple[Dataset, Dataset]:
    """10% of the train movies held out (seed 0), for the baselines that choose a hyperparameter."""
    return train_val_split(train, VAL_FRACTION, seed=SEED, groups=imdb_groups(train))


def accuracy(predicted, labels) -> float:
    return float(np.mean(np.asarray(predicted) == np.asarray(labels)))


# ---- NBSVM ----------------------------------------------------------------------------------


def log_count_ratio(x, labels: np.ndarray, alpha: float = 1.0) -> np.ndarray:
    """Wang and Manning's r = log((p/|p|1) / (q/|q|1)), p and q the smoothed feature sums per class."""
    p = alpha + np.asarray(x[labels == 1].sum(axis=0)).ravel()
    q = alpha + np.asarray(x[labels == 0].sum(axis=0)).ravel()
    return np.log((p / p.sum()) / (q / q.sum())).astype(np.float32)


def nbsvm_classifier(kind: str):
    """The linear model on the scaled features: Mesnil et al.'s logistic regression or Wang and Manning's SVM."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.svm import LinearSVC

    if kind == "logreg":
        return LogisticRegression(solver="liblinear", C=1.0), "LogisticRegression(liblinear, C=1)"
    return LinearSVC(C=1.0), f"LinearSVC(C=1) with interpolation beta={WANG_MANNING_BETA}"


def interpolate_weights(svm, beta: float = WANG_MANNING_BETA) -> None:
    """Wang and Manning's w' = (1 - beta) * mean(|w|) + beta * w, in place (the intercept is kept)."""
    w = svm.coef_
    svm.coef_ = (1.0 - beta) * np.abs(w).mean() + beta * w


def run_nbsvm(train: Dataset, test: Dataset, max_n: int, kind: str) -> Result:
    from sklearn.feature_extraction.text import CountVectorizer

    t0 = time.perf_counter()
    vectorizer = CountVectorizer(
        tokenizer=tokenize, lowercase=False, token_pattern=None, ngram_range=(1, max_n), binary=True, dtype=np.float32
    )
    x_train = vectorizer.fit_transform(train.texts)
    r = log_count_ratio(x_train, train.labels)
    model, setting = nbsvm_classifier(kind)
    model.fit(x_train.multiply(r).tocsr(), train.labels)
    if kind == "svm":
        interpolate_weights(model)
    t1 = time.perf_counter()
    predicted = model.predict(vectorizer.transform(test.texts).multiply(r).tocsr())
    t2 = time.perf_counter()
    return Result(
        name=f"nbsvm-{'bigrams' if max_n == 2 else 'trigrams'}",
        accuracy=accuracy(predicted, test.labels),
        seconds=t2 - t0,
        select_s=0.0,
        fit_s=t1 - t0,
        predict_s=t2 - t1,
        features=len(r),
        setting=f"{setting} on binarized 1-{max_n}-grams x r (alpha=1)",
    )


# ---- TF-IDF + logistic regression ---------------------------------------------------------


def fit_tfidf_lr(train: Dataset, c: float):
    """The TF-IDF vectorizer and LogisticRegression(C=c), both fitted on `train`."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    vectorizer = TfidfVectorizer(
        tokenizer=tokenize,
        lowercase=False,
        token_pattern=None,
        ngram_range=(1, 2),
        min_df=2,
        max_df=0.9,
        sublinear_tf=True,
        dtype=np.float32,
    )
    model = LogisticRegression(solver="liblinear", C=c)
    model.fit(vectorizer.fit_transform(train.texts), train.labels)
    return vectorizer, model


def run_tfidf_lr(train: Dataset, test: Dataset) -> Result:
    t0 = time.perf_counter()
    part, val = validation_split(train)
    choice = {}
    for c in TFIDF_C_GRID:
        vectorizer, model = fit_tfidf_lr(part, c)
        choice[c] = accuracy(model.predict(vectorizer.transform(val.texts)), val.labels)
    best_c = max(choice, key=choice.get)  # the first of equals, i.e. the strongest regularization
    t1 = time.perf_counter()
    vectorizer, model = fit_tfidf_lr(train, best_c)
    t2 = time.perf_counter()
    predicted = model.predict(vectorizer.transform(test.texts))
    t3 = time.perf_counter()
    return Result(
        name="tfidf-lr",
        accuracy=accuracy(predicted, test.labels),
        seconds=t3 - t0,
        select_s=t1 - t0,
        fit_s=t2 - t1,
        predict_s=t3 - t2,
        features=len(vectorizer.vocabulary_),
        setting=f"TfidfVectorizer(1-2-grams, min_df=2, max_df=0.9, sublinear_tf) + LogisticRegression(liblinear, C={best_c:g})",
        choice={f"C={c:g}": round(a, 4) for c, a in choice.items()},
    )


# ---- fastText -------------------------------------------------------------------------------


def fasttext_lines(dataset: Dataset) -> list[str]:
    return [" ".join(tokenize(text)) for text in dataset.texts]


def train_fasttext(lines: list[str], labels: np.ndarray, class_names: list[str], lr: float, folder: Path):
    import fasttext

    path = folder / "train.txt"
    with path.open("w", encoding="utf-8") as f:
        for line, label in zip(lines, labels):
            f.write(f"__label__{class_names[label]} {line}\n")
    return fasttext.train_supervised(
        input=str(path), dim=10, epoch=5, lr=lr, wordNgrams=2, loss="softmax", thread=1, seed=SEED, verbose=0
    )


def fasttext_predict(model, lines: list[str], class_names: list[str]) -> np.ndarray:
    labels, _ = model.predict(lines)
    index = {f"__label__{name}": i for i, name in enumerate(class_names)}
    return np.array([index[top[0]] for top in labels])


def run_fasttext(train: Dataset, test: Dataset) -> Result:
    names = train.class_names
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        part, val = validation_split(train)
        part_lines, val_lines = fasttext_lines(part), fasttext_lines(val)
        choice = {}
        for lr in FASTTEXT_LR_GRID:
            model = train_fasttext(part_lines, part.labels, names, lr, Path(tmp))
            choice[lr] = accuracy(fasttext_predict(model, val_lines, names), val.labels)
        best_lr = max(choice, key=choice.get)
        t1 = time.perf_counter()
        model = train_fasttext(fasttext_lines(train), train.labels, names, best_lr, Path(tmp))
    t2 = time.perf_counter()
    predicted = fasttext_predict(model, fasttext_lines(test), names)
    t3 = time.perf_counter()
    return Result(
        name="fasttext-bigrams",
        accuracy=accuracy(predicted, test.labels),
        seconds=t3 - t0,
        select_s=t1 - t0,
        fit_s=t2 - t1,
        predict_s=t3 - t2,
        features=len(model.words),
        setting=f"fastText supervised dim=10 epoch=5 wordNgrams=2 (2M hashed buckets) lr={best_lr:g} thread=1 seed={SEED}",
        choice={f"lr={lr:g}": round(a, 4) for lr, a in choice.items()},
    )


# ---- report ---------------------------------------------------------------------------------


def baselines(nbsvm_kind: str) -> dict[str, Callable[[Dataset, Dataset], Result]]:
    return {
        "nbsvm-bigrams": lambda train, test: run_nbsvm(train, test, 2, nbsvm_kind),
        "nbsvm-trigrams": lambda train, test: run_nbsvm(train, test, 3, nbsvm_kind),
        "tfidf-lr": run_tfidf_lr,
        "fasttext-bigrams": run_fasttext,
    }


def fasttext_distribution() -> tuple[str, str]:
    """(distribution, version) of the installed fastText module; exits on fasttext 0.9.3 and later.

    With thread < 10 fastText initializes only thread/10 of its input matrix (one block of ten
    per thread). 0.9.2 keeps it in a std::vector, so the rest is zero; 0.9.3 (PyPI, built from
    source) keeps it in an intgemm::AlignedVector that does not zero its memory, so the rest is
    whatever the allocator hands back: after other work in the same process that can be
    NaN ("RuntimeError: Encountered NaN", seen here for lr=0.05 after scikit-learn had run) or
    silently change the model. fasttext-wheel 0.9.2 zero-fills that memory.
    """
    from importlib.metadata import PackageNotFoundError

    for name in ("fasttext-wheel", "fasttext"):
        try:
            found = version(name)
        except PackageNotFoundError:
            continue
        if name == "fasttext" and tuple(int(p) for p in found.split(".")[:3] if p.isdigit()) >= (0, 9, 3):
            sys.exit(
                f"fasttext {found} reads uninitialized memory with thread=1 (see fasttext_distribution); "
                "pip uninstall fasttext && pip install fasttext-wheel==0.9.2"
            )
        return name, found
    sys.exit("fastText is missing: pip install -r benchmarks/requirements-bench.txt (scikit-learn, fasttext-wheel)")


def versions() -> dict[str, str]:
    """The versions that matter; exits with the install command when scikit-learn or fastText is missing."""
    try:
        import sklearn
    except ImportError:
        sys.exit(
            "scikit-learn is missing: pip install -r benchmarks/requirements-bench.txt (scikit-learn, fasttext-wheel)"
        )
    import scipy

    fasttext_name, fasttext_version = fasttext_distribution()
    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "scikit-learn": sklearn.__version__,
        fasttext_name: fasttext_version,
    }


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def format_result(r: Result) -> str:
    select = f"select {r.select_s:.1f} s, " if r.choice else ""
    timing = f"{r.seconds:6.1f} s ({select}fit {r.fit_s:.1f} s, predict {r.predict_s:.1f} s)"
    chosen = (
        "; validation accuracy " + ", ".join(f"{k}: {100 * a:.2f}%" for k, a in r.choice.items()) if r.choice else ""
    )
    return (
        f"{r.name:<17} test accuracy {100 * r.accuracy:.2f}%   {timing}   {r.features:,} features   {r.setting}{chosen}"
    )


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--imdb",
        help="folder holding aclImdb_labeled.tar.gz, or the archive (default $LSTMKIT_IMDB or ../shared/data/imdb)",
    )
    parser.add_argument("--only", help="comma-separated subset of: " + ", ".join(baselines("logreg")))
    parser.add_argument(
        "--nbsvm-classifier",
        choices=("logreg", "svm"),
        default="logreg",
        help="NBSVM's linear model (see the module docstring)",
    )
    parser.add_argument("--json", metavar="PATH", help="also write the results to PATH")
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    runners = baselines(args.nbsvm_classifier)
    chosen = args.only.split(",") if args.only else list(runners)
    unknown = [name for name in chosen if name not in runners]
    if unknown:
        sys.exit(f"unknown baseline(s) {', '.join(unknown)}; choose from {', '.join(runners)}")
    lib_versions = versions()
    print(f"# {datetime.date.today()}  {cpu_model()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}")
    print("# " + ", ".join(f"{k} {v}" for k, v in lib_versions.items()))
    train, test, load_s = load_reviews(find_imdb(args.imdb))
    print(f"loaded {len(train):,} train and {len(test):,} test reviews in {load_s:.1f} s (lstmkit.data.imdb.read_imdb)")
    results = []
    for name in chosen:
        results.append(runners[name](train, test))
        print(format_result(results[-1]), flush=True)
    if args.json:
        report = {"date": str(datetime.date.today()), "cpu": cpu_model(), "cores": os.cpu_count()}
        report |= {"versions": lib_versions, "load_s": load_s, "results": [asdict(r) for r in results]}
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
