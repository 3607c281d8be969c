"""Multi-label classification: a threshold per label tuned on validation, the metrics, the finished run.

Shape legend: N texts, K labels. A multi-label model (`lstmkit.nn.architecture`) gives K
independent sigmoid probabilities p (N, K); text i carries label k when p[i, k] >= t[k]. Training
minimises binary cross-entropy averaged over the labels; then each label's threshold t[k] is the
one that maximises that label's F1 on validation (`tune_thresholds`), and is saved in the model
directory's train config beside the weights (config.json's checksum vouches for it).

Metrics (`multilabel_report`): per label precision, recall, F1 and support at its threshold; micro
averages (counts pooled over labels, so frequent labels weigh more), macro averages (every label
alike), subset accuracy (the whole set right) and Hamming loss (the share of wrong yes/no calls).
"""

from __future__ import annotations

import time

import numpy as np

from lstmkit.errors import LstmkitError
from lstmkit.io import checkpoint
from lstmkit.tasks.presets import parse_class_weight

DEFAULT_THRESHOLD = 0.5  # a label that validation never shows keeps it: there is no F1 to tune
_EDGE = 1e-4  # tuned thresholds stay inside (0, 1), where a stored one must lie


def check_config(config):
    """The config of a multi-label run ("multi_label": True), or an LstmkitError for the settings
    that assume one label per text: --class-weight and self-training."""
    if parse_class_weight(config.get("class_weight", "none")) != "none":
        raise LstmkitError(
            "--class-weight weighs one class per text; multi-label data weighs every label alike: drop --class-weight"
        )
    if int(config.get("self_training", 0)):
        raise LstmkitError(
            "self-training labels texts with one class each, not label sets; train multi-label data with --self-training 0"
        )
    return {**config, "multi_label": True, "class_weights": None}


def best_threshold(proba, truth):
    """The threshold t in (0, 1) that maximises F1 = 2 TP / (2 TP + FP + FN) of `p >= t` for one label.

    Candidates lie halfway between consecutive distinct probabilities (and halfway to 0 below the
    lowest), so a tuned threshold is not sitting on a validation example's score; of equal F1s
    the highest threshold wins (fewer labels). Without a positive example: DEFAULT_THRESHOLD.

    >>> float(best_threshold(np.array([0.9, 0.6, 0.4, 0.1]), np.array([1, 1, 0, 0])))
    0.5
    """
    proba, truth = np.asarray(proba, np.float64), np.asarray(truth) > 0
    if not truth.any():
        return DEFAULT_THRESHOLD
    scores = np.unique(proba)[::-1]  # distinct, highest first
    order = np.argsort(-proba, kind="stable")
    hits = truth[order]
    # After predicting every example scoring >= scores[j]: its true and false positives.
    last = np.searchsorted(-proba[order], -scores, side="right")  # examples with p >= scores[j]
    true_pos = np.cumsum(hits)[last - 1]
    false_pos = last - true_pos
    f1 = 2 * true_pos / (2 * true_pos + false_pos + (truth.sum() - true_pos))
    j = int(np.argmax(f1))
    below = scores[j + 1] if j + 1 < len(scores) else 0.0
    return float(np.clip((scores[j] + below) / 2, _EDGE, 1 - _EDGE))


def tune_thresholds(proba, labels):
    """One threshold per label (K,), each maximising that label's F1 on (proba, labels) (N, K)."""
    proba, labels = np.asarray(proba), np.asarray(labels)
    return np.array([best_threshold(proba[:, k], labels[:, k]) for k in range(labels.shape[1])], np.float32)


def _prf(true_pos, false_pos, false_neg):
    """(precision, recall, F1), 0 where a denominator is 0 (scikit-learn's zero_division=0)."""
    precision = true_pos / (true_pos + false_pos) if true_pos + false_pos else 0.0
    recall = true_pos / (true_pos + false_neg) if true_pos + false_neg else 0.0
    f1 = 2 * true_pos / (2 * true_pos + false_pos + false_neg) if true_pos else 0.0
    return float(precision), float(recall), float(f1)


def multilabel_report(labels, proba, thresholds, class_names):
    """The multi-label metrics (see the module's docstring) as a JSON-ready dict.

    labels: (N, K) 0/1 true sets; proba: (N, K); thresholds: (K,). "f1" is the micro F1.
    """
    truth = np.asarray(labels) > 0
    predicted = np.asarray(proba) >= np.asarray(thresholds, np.float32)[None, :]
    tp = (truth & predicted).sum(axis=0)
    fp = (~truth & predicted).sum(axis=0)
    fn = (truth & ~predicted).sum(axis=0)
    per_class = {}
    for k, name in enumerate(class_names):
        precision, recall, f1 = _prf(tp[k], fp[k], fn[k])
        per_class[name] = {
            "precision": precision,
            "recall": recall,
            "f1": f1,
            "support": int(truth[:, k].sum()),
            "threshold": float(thresholds[k]),
        }
    micro = dict(zip(("precision", "recall", "f1"), _prf(tp.sum(), fp.sum(), fn.sum())))
    macro = {key: float(np.mean([c[key] for c in per_class.values()])) for key in ("precision", "recall", "f1")}
    n = len(truth)
    return {
        "multi_label": True,
        "n": n,
        "class_names": list(class_names),
        "subset_accuracy": float(np.mean(np.all(truth == predicted, axis=1))) if n else 0.0,
        "hamming_loss": float(np.mean(truth != predicted)) if n else 0.0,
        "f1": micro["f1"],
        "micro": micro,
        "macro": macro,
        "per_class": per_class,
        "labels_per_text": {
            "true": float(truth.sum(axis=1).mean()) if n else 0.0,
            "predicted": float(predicted.sum(axis=1).mean()) if n else 0.0,
        },
    }


def describe(m):
    """One line of the headline numbers."""
    return (
        f"micro F1 {m['micro']['f1']:.4f}, macro F1 {m['macro']['f1']:.4f}, "
        f"subset accuracy {m['subset_accuracy']:.4f} on {m['n']:,} examples"
    )


def test_and_save(model, test, val, class_names, config, out, t_start):
    """`lstmkit.tasks.run.test_and_save` for a multi-label model: tune the thresholds on validation,
    score the test split with them, write the finished model directory, say so.

    No temperature is fitted (it scales one softmax or sigmoid; K sigmoids get their thresholds
    instead). When validation is the test split (the seed preset's), the thresholds stay 0.5:
    test would grade its own tuning."""
    held_out = val is not test
    if held_out:
        thresholds = tune_thresholds(model.predict(val.texts), val.labels)
    else:
        thresholds = np.full(len(class_names), DEFAULT_THRESHOLD, np.float32)
    stored = {name: float(t) for name, t in zip(class_names, thresholds)}
    config = {**config, "temperature": 1.0, "thresholds": stored}
    t0 = time.perf_counter()
    metrics = multilabel_report(test.labels, model.predict(test.texts), thresholds, class_names)
    metrics["predict_seconds"] = time.perf_counter() - t0
    metrics["train_seconds"] = time.perf_counter() - t_start
    checkpoint.save_model(model, out, train_config=config, history=model.history, metrics=metrics, status="complete")
    print(f"test: {describe(metrics)}; total {metrics['train_seconds']:.0f} s", flush=True)
    if held_out:
        absent = [name for name, c in zip(class_names, np.asarray(val.labels).sum(axis=0)) if not c]
        said = f"; {', '.join(absent)} never in validation: 0.5" if absent else ""
        print(
            "thresholds tuned on validation (each label's best F1): "
            + ", ".join(f"{n} {t:.3f}" for n, t in stored.items())
            + said,
            flush=True,
        )
    else:
        print("thresholds: 0.5 for every label (validation is the test split, so nothing was tuned)", flush=True)
    print("calibration: none for multi-label (the thresholds take its place)", flush=True)
    print(f"model saved to {out}", flush=True)
    return metrics


def prediction_rows(predicted, texts, *, thresholds=None, top_k=0):
    """[{"text", "labels", "probabilities"}] per text: its label set (probability >= its threshold;
    `thresholds` (one number or K) overrides the model's) with each label's probability, most
    likely first. top_k: also "top_k", the K likeliest classes whatever their threshold."""
    names = predicted.class_names
    sets = predicted.label_sets(thresholds)
    proba = np.asarray(predicted)
    out = []
    for text, chosen, p in zip(texts, sets, proba):
        index = {n: k for k, n in enumerate(names)}
        chosen = sorted(chosen, key=lambda n: -p[index[n]])
        row = {"text": text, "labels": chosen, "probabilities": {n: float(p[index[n]]) for n in chosen}}
        if top_k:
            order = np.argsort(-p, kind="stable")[:top_k]
            row["top_k"] = [{"label": names[j], "probability": float(p[j])} for j in order]
        out.append(row)
    return out


def multilabel_table(m):
    """`evaluate`'s text output for a multi-label model: the headline numbers, then per label."""
    names = m["class_names"]
    width = max(16, *(len(n) + 2 for n in names))
    lines = [
        f"{'examples':<{width}} {m['n']}",
        f"{'subset accuracy':<{width}} {m['subset_accuracy']:.4f}   (every label of a text right)",
        f"{'hamming loss':<{width}} {m['hamming_loss']:.4f}   (share of wrong yes/no calls)",
        f"{'labels per text':<{width}} {m['labels_per_text']['true']:.2f} true, {m['labels_per_text']['predicted']:.2f} predicted",
        "",
        f"{'':<{width}} {'precision':>10} {'recall':>10} {'f1':>10} {'support':>10} {'threshold':>10}",
    ]
    for name in names:
        c = m["per_class"][name]
        lines.append(
            f"{name:<{width}} {c['precision']:>10.4f} {c['recall']:>10.4f} {c['f1']:>10.4f} {c['support']:>10} {c['threshold']:>10.3f}"
        )
    for average in ("micro", "macro"):
        a = m[average]
        lines.append(f"{average + ' avg':<{width}} {a['precision']:>10.4f} {a['recall']:>10.4f} {a['f1']:>10.4f}")
    return "\n".join(lines)
