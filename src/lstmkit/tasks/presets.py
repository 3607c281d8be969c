"""Named training configurations (seed, default, best), their checks, and the pretraining settings (LMConfig).

A preset is a flat dict of settings; every key is also a `lstmkit train` flag (`max_tokens` is
`--max-tokens`), so any preset value can be overridden. The resolved config is printed and saved
in the model directory.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from lstmkit.errors import LstmkitError

# The seed notebook's configuration, exactly.
SEED = {
    "max_tokens": 100,  # counts the padding '' and '[UNK]': 98 real words
    "sequence_length": 200,
    "inference_length": 0,  # tokens read per text by evaluation and prediction; 0 = sequence_length
    "standardize": "lower_and_strip_punctuation",
    "strip_html": False,  # Keras keeps the token 'br' from '<br />'
    "embedding_dim": 64,
    "bigram_buckets": 0,  # hash buckets of word-pair vectors added to the word vectors; 0 = off
    "bigram_dropout": 0.0,  # in training each position loses its pair's vector with this probability
    "lstm_units": 64,
    "lstm_layers": 1,
    "bidirectional": True,
    "pooling": "last",  # the final states of both directions, as Bidirectional(LSTM(64))
    "dense_units": 64,
    "dropout": 0.0,
    "embedding_dropout": 0.0,
    "word_dropout": 0.0,  # each training token becomes [UNK] with this probability
    "batch_size": 64,
    "epochs": 5,
    "optimizer": "adam",
    "learning_rate": 1e-3,
    "schedule": "constant",
    "warmup_steps": 0,
    "clipnorm": 0.0,
    "weight_decay": 0.0,
    "adversarial": 0.0,  # adversarial training: size of the embedding perturbation per text, in token lengths; 0 = off
    "virtual_adversarial": 0.0,  # virtual adversarial training (no labels needed): its perturbation size, in token lengths; 0 = off
    "weight_average": 0.0,  # decay of a moving average of the weights, used for validation and the final model; 0 = off
    "table_updates": "dense",  # "rows": Adam moves only the embedding rows a batch read (lstmkit.nn.lazy_adam)
    "shuffle_buffer": 10000,
    "bucket": True,
    "validation": "test",  # the seed validates on the test split
    "group_validation": False,  # IMDB: validate on whole movies (blocks of review ids) that training never sees
    "early_stopping": 0,  # patience in epochs; 0 = off
    "init": "keras",
    "self_training": 0,  # rounds of self-training on --unlabeled text (lstmkit.tasks.selftrain); 0 = off
    "pseudo_confidence": 0.9,  # self-training keeps unlabeled texts predicted with at least this probability
    "pseudo_labels": "hard",  # a kept text's target: "hard" (the predicted class) or "soft" (the teacher's probabilities)
    "self_training_epochs": 0,  # epochs of each self-training round's model; 0 = --epochs
    "student": {},  # settings in which the self-training students differ from the first model (--student KEY=VALUE)
    "class_weight": "none",  # the loss's weight per class: "none", "balanced" (N / (K n_class)), or JSON {"class": weight}
    "members": 1,  # models trained on the same data with other seeds, their probabilities averaged (an ensemble)
    "final_members": 0,  # members of the last self-training round's student, the model the run keeps; 0 = as the other students
    "seed": 0,
}

# Our recommended configuration: chosen on a validation split carved from train (docs/accuracy.md).
DEFAULT = {
    **SEED,
    "max_tokens": 10000,  # a larger vocabulary (20,000, 30,000) fitted train better and validation worse
    "sequence_length": 800,  # training reads the first 800 tokens (400 scored lower on validation and test)
    "inference_length": 2500,  # evaluation and prediction read up to 2,500: every IMDB review whole
    "strip_html": True,
    "embedding_dim": 128,  # with adversarial training 128 beats 64 on validation (without it, 64 did)
    "bigram_buckets": 100000,  # word-pair vectors: validation loss 0.2534 against 0.2685 without (with --adversarial 0.4)
    "lstm_units": 64,
    "pooling": "maxmean",  # max and mean over the real tokens of both directions
    "dense_units": 64,
    "dropout": 0.3,
    "embedding_dropout": 0.2,
    "epochs": 2,  # the validation loss rises from the third epoch on
    "learning_rate": 2e-3,
    "schedule": "cosine",
    "warmup_steps": 100,
    "clipnorm": 1.0,
    "weight_average": 0.998,  # validate and finish with a moving average of the weights
    "adversarial": 0.4,  # the text moved by 0.4 of a word vector: ties 0.5 on validation, farther from where learning stops (0.7 stalls)
    "table_updates": "dense",  # rows (lazy Adam) is faster on short texts but learns them worse (docs/accuracy.md)
    "shuffle_buffer": 0,  # 0 = full shuffle
    "validation": "0.1",
    "group_validation": True,  # IMDB: validation of unseen movies, as test; other data: a random split
    "early_stopping": 0,
    "members": 2,  # two models averaged: test 90.49% against 90.00% for one (three seeds), 9 minutes on 2 cores
}

# The most accurate configuration within an hour on a 2-core CPU: the default, self-trained on
# unlabeled text (--unlabeled; on IMDB its 50,000 unsup reviews) for two rounds of one epoch
# (lstmkit.tasks.selftrain), about 45 minutes. On validation of unseen movies a BiLSTM(128) student beats
# a BiLSTM(64) one; learning the teacher's probabilities on every unlabeled text beats learning its
# confident classes; with those soft labels a second round lowers the loss again, where with hard
# labels only the first round did (docs/accuracy.md).
BEST = {
    **DEFAULT,
    "members": 1,  # each round one model: the three-seed numbers were measured so, and two rounds of two would not fit the hour
    "self_training": 2,  # two rounds of soft labels: validation loss 0.2585 against 0.2657 for one (mean of seeds 0, 1, 2)
    "self_training_epochs": 1,
    "pseudo_labels": "soft",  # the teacher's probabilities as targets (validation loss 0.2602 against 0.2725 for hard labels)
    "pseudo_confidence": 0.5,  # soft targets: every unlabeled text, the uncertain ones teaching "uncertain"
    "student": {
        "lstm_units": 128
    },  # the student learns from 3x the texts: a wider LSTM pays there (on the labeled texts alone it did not)
}

PRESETS = {"seed": SEED, "default": DEFAULT, "best": BEST}
MAX_MEMBERS = 64  # as many as a model directory holds (lstmkit.io.checkpoint.MAX_MEMBERS; a test keeps them equal)

# What a self-training student may set differently from the first model: its size, input,
# regularisation and members (an ensemble of two teachers, single students). Not the data,
# validation, seed or self-training settings, which the run shares.
STUDENT_KEYS = (
    "max_tokens",
    "sequence_length",
    "inference_length",
    "embedding_dim",
    "bigram_buckets",
    "bigram_dropout",
    "lstm_units",
    "lstm_layers",
    "pooling",
    "dense_units",
    "dropout",
    "embedding_dropout",
    "word_dropout",
    "learning_rate",
    "warmup_steps",
    "clipnorm",
    "weight_decay",
    "adversarial",
    "virtual_adversarial",
    "weight_average",
    "members",
)

CHOICES = {
    "standardize": ("lower_and_strip_punctuation", "lower", "strip_punctuation", "none"),
    # "last": the final states; the others are lstmkit.nn.pooling.POOLINGS (written out: importing it
    # loads JAX, which `lstmkit --help` must not wait for; a test keeps the two equal)
    "pooling": ("last", "max", "mean", "maxmean"),
    "optimizer": ("adam", "sgd"),
    "schedule": ("constant", "cosine"),
    "init": ("keras", "torch"),
    "pseudo_labels": ("hard", "soft"),
    "table_updates": ("dense", "rows"),
}

# `lstmkit train --help`'s line for each setting; the default preset's value is added after it.
HELP = {
    "max_tokens": "vocabulary size, counting padding and [UNK]",
    "sequence_length": "tokens of each text read in training",
    "inference_length": "tokens read by evaluation and prediction (0: --sequence-length)",
    "standardize": "text standardisation before splitting on whitespace, as Keras's TextVectorization",
    "strip_html": "turn HTML line breaks (<br />) into spaces",
    "embedding_dim": "size of each word vector",
    "bigram_buckets": "rows of hashed word-pair vectors added to the word vectors (0: off)",
    "bigram_dropout": "probability of dropping a position's word-pair vector in training",
    "lstm_units": "hidden units per LSTM direction",
    "lstm_layers": "stacked LSTM layers",
    "bidirectional": "read each text in both directions",
    "pooling": "what the classifier reads: the last states, or max/mean over the real tokens",
    "dense_units": "units of the hidden Dense layer (0: none)",
    "dropout": "dropout before the Dense layers",
    "embedding_dropout": "spatial dropout of whole word-vector dimensions",
    "word_dropout": "probability that a training token becomes [UNK]",
    "batch_size": "texts per training step",
    "epochs": "passes over the training data",
    "optimizer": "the optimizer",
    "learning_rate": "peak learning rate",
    "schedule": "learning-rate schedule after warmup",
    "warmup_steps": "steps of linear learning-rate warmup",
    "clipnorm": "clip each step's gradient to this global norm (0: off)",
    "weight_decay": "decoupled weight decay (AdamW; 0: off)",
    "adversarial": "adversarial training: perturbation size per text, in word-vector lengths (0: off)",
    "virtual_adversarial": "virtual adversarial training (label-free): its perturbation size (0: off)",
    "weight_average": "decay of a moving average of the weights used for validation and the final model (0: off)",
    "table_updates": "embedding tables: Adam moves every row every step (dense), or only the rows a batch read (rows: lazy Adam; faster on short texts, but rarely read rows learn less)",
    "shuffle_buffer": "texts shuffled together (0: the whole training set)",
    "bucket": "batch texts of similar length together, so little padding is computed",
    "validation": "validation data: a fraction of train carved out (0.1), or 'test'",
    "group_validation": "IMDB: validate on whole movies that training never sees",
    "early_stopping": "stop after this many epochs without a better validation loss, keeping the best weights (0: off)",
    "init": "weight initialisation scheme",
    "self_training": "rounds of self-training on --unlabeled text (0: off)",
    "pseudo_confidence": "self-training keeps unlabeled texts predicted with at least this probability",
    "pseudo_labels": "self-training targets: the teacher's classes (hard) or probabilities (soft)",
    "self_training_epochs": "epochs per self-training round (0: --epochs)",
    "class_weight": 'the loss\'s weight per class: none, balanced (rare classes weigh more), or JSON {"class": weight}',
    "members": "models trained on the same split with seeds seed, seed + 1000, ..., whose probabilities are averaged (each costs a whole training)",
    "final_members": "members of the last self-training round's student, the model the run keeps (0: as the other students); the earlier rounds' teachers stay as they are",
    "seed": "random seed of the split, the initial weights and the batches",
}


def help_line(key):
    """A setting's --help text: what it does, and the default preset's value."""
    value = DEFAULT[key]
    shown = json.dumps(value) if isinstance(value, dict) else str(value).lower() if isinstance(value, bool) else value
    return f"{HELP.get(key, key)} [default preset: {shown}]"


def parse_student(pairs):
    """`--student` values ("lstm_units=128", ...) -> {"lstm_units": 128}; "none" clears them.

    >>> parse_student(["lstm_units=128", "dropout=0.4"])
    {'lstm_units': 128, 'dropout': 0.4}
    """
    student = {}
    for pair in pairs:
        if pair.strip().lower() == "none":
            student = {}
            continue
        key, sep, value = pair.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or key not in STUDENT_KEYS:
            raise LstmkitError(
                f"--student takes KEY=VALUE with KEY one of {', '.join(STUDENT_KEYS)} (or 'none'), got {pair!r}"
            )
        kind = type(SEED[key])
        try:
            student[key] = kind(value.strip())
        except ValueError:
            raise LstmkitError(
                f"--student {key} needs {'an integer' if kind is int else 'a number'}, got {value!r}"
            ) from None
    return student


def parse_class_weight(setting):
    """--class-weight as "none", "balanced", or {class name: weight} (from a JSON object).

    >>> parse_class_weight('{"spam": 5}'), parse_class_weight("balanced")
    ({'spam': 5.0}, 'balanced')
    """
    text = str(setting).strip()
    if text.lower() in ("none", "balanced"):
        return text.lower()
    fix = "use none, balanced, or a JSON object of positive weights such as '{\"spam\": 5}'"
    try:
        weights = json.loads(text)
    except ValueError:
        raise LstmkitError(f"--class-weight {text!r} is not none, balanced or JSON; {fix}") from None
    if not isinstance(weights, dict) or not weights:
        raise LstmkitError(f"--class-weight {text!r}: {fix}")
    for name, w in weights.items():
        if isinstance(w, bool) or not isinstance(w, (int, float)) or not w > 0 or w == float("inf"):
            raise LstmkitError(f"--class-weight: class {name!r} has weight {w!r}; {fix}")
    return {str(name): float(w) for name, w in weights.items()}


def student_config(config):
    """The configuration of a self-training student: the run's, with its `student` settings applied."""
    return {**config, **config.get("student", {})}


def round_config(config, r):
    """Self-training round r's configuration: round 0 the run's, then `student_config`, the last
    round's with `final_members` members when set (tests/tasks/test_presets.py)."""
    if r == 0:
        return config
    student = student_config(config)
    if r == int(config.get("self_training", 0)) and int(config.get("final_members", 0)):
        student["members"] = int(config["final_members"])
    return student


def resolve(preset="default", **overrides):
    """The preset's settings with overrides applied (None means 'keep the preset's value')."""
    if preset not in PRESETS:
        raise LstmkitError(f"unknown preset {preset!r}; use one of {', '.join(PRESETS)}")
    config = dict(PRESETS[preset])
    for key, value in overrides.items():
        if value is None:
            continue
        if key not in config:
            raise LstmkitError(f"unknown setting {key!r}; known: {', '.join(config)}")
        config[key] = value
    student = config.get("student") or {}
    config["student"] = parse_student(f"{k}={v}" for k, v in student.items())  # checks keys and types
    _check(config)
    if config["student"]:
        if not int(config["self_training"]) and overrides.get("student") is not None:
            raise LstmkitError(
                "--student sets the self-training students; add --self-training 1 (or more rounds), or drop --student"
            )
        try:
            _check(student_config(config))
        except LstmkitError as e:
            raise LstmkitError(f"--student: {e}") from None
    if overrides.get("final_members") and not int(config["self_training"]):  # a preset's waits unused
        raise LstmkitError(
            "--final-members sets the last self-training student's members: add --self-training N, or use --members"
        )
    config["preset"] = preset
    return config


def _check(config):
    """Raise LstmkitError for the first setting out of its range."""
    for key, choices in CHOICES.items():
        if config[key] not in choices:
            raise LstmkitError(f"--{key.replace('_', '-')} must be one of {', '.join(choices)}, got {config[key]!r}")
    val = str(config["validation"])
    if val != "test":
        try:
            f = float(val)
        except ValueError:
            f = -1.0
        if not 0.0 < f < 1.0:
            raise LstmkitError(f"--validation must be 'test' or a fraction of train in (0, 1), got {val!r}")
    if int(config["inference_length"]) < 0:
        raise LstmkitError(
            f"--inference-length must be 0 (as --sequence-length) or a number of tokens, got {config['inference_length']}"
        )
    for key in ("max_tokens", "sequence_length", "embedding_dim", "lstm_units", "lstm_layers", "batch_size", "epochs"):
        if int(config[key]) < 1:
            raise LstmkitError(f"--{key.replace('_', '-')} must be at least 1, got {config[key]}")
    if not 1 <= int(config["members"]) <= MAX_MEMBERS:
        raise LstmkitError(f"--members must be 1 (one model) to {MAX_MEMBERS}, got {config['members']}")
    if not 0 <= int(config.get("final_members", 0)) <= MAX_MEMBERS:
        raise LstmkitError(
            f"--final-members must be 0 (as the other students) or 1 to {MAX_MEMBERS}, got {config['final_members']}"
        )
    if int(config["self_training"]) < 0:
        raise LstmkitError(f"--self-training must be 0 (off) or a number of rounds, got {config['self_training']}")
    if int(config["self_training_epochs"]) < 0:
        raise LstmkitError(
            f"--self-training-epochs must be 0 (as --epochs) or more, got {config['self_training_epochs']}"
        )
    if not 0.5 <= float(config["pseudo_confidence"]) < 1.0:
        raise LstmkitError(f"--pseudo-confidence must be in [0.5, 1), got {config['pseudo_confidence']}")
    for key in ("adversarial", "virtual_adversarial"):
        if not float(config[key]) >= 0:  # also refuses NaN
            raise LstmkitError(
                f"--{key.replace('_', '-')} must be 0 (off) or a positive perturbation size in token lengths, "
                f"got {config[key]}"
            )
    if int(config["bigram_buckets"]) < 0:
        raise LstmkitError(
            f"--bigram-buckets must be 0 (off) or a number of hash buckets, got {config['bigram_buckets']}"
        )
    if not 0.0 <= float(config["bigram_dropout"]) < 1.0:
        raise LstmkitError(f"--bigram-dropout must be in [0, 1), got {config['bigram_dropout']}")
    if config["max_tokens"] < 3:
        raise LstmkitError("--max-tokens must be at least 3 (padding, [UNK] and one word)")
    parse_class_weight(config.get("class_weight", "none"))
    if config.get("table_updates") == "rows" and (config["optimizer"] != "adam" or float(config["weight_decay"])):
        raise LstmkitError(
            "--table-updates rows needs --optimizer adam and no --weight-decay; or --table-updates dense"
        )
    if not float(config["learning_rate"]) >= 0:  # also refuses NaN; 0 keeps the weights as they start
        raise LstmkitError(f"--learning-rate must be 0 or more, got {config['learning_rate']}")


@dataclass(frozen=True)
class LMConfig:
    """Settings of a pretraining run; the sizes must match the classifier that adopts it.

    The defaults are the `default` preset's sizes (see `lstmkit.tasks.presets.DEFAULT`).
    """

    max_tokens: int = DEFAULT["max_tokens"]
    embedding_dim: int = DEFAULT["embedding_dim"]
    lstm_units: int = DEFAULT["lstm_units"]
    bidirectional: bool = DEFAULT["bidirectional"]
    sequence_length: int = DEFAULT["sequence_length"]
    standardize: str = DEFAULT["standardize"]
    strip_html: bool = DEFAULT["strip_html"]
    init: str = DEFAULT["init"]
    output_vocab: int = 8000
    negatives: int = 512
    batch_size: int = 64
    learning_rate: float = 2e-3
    clipnorm: float = 1.0
    epochs: int = 1
    max_steps: int = 0  # 0: no limit; else stop after this many steps in all (a short run)
    seed: int = 0

    @property
    def directions(self) -> tuple[str, ...]:
        return ("forward", "backward") if self.bidirectional else ("forward",)

    def check(self) -> LMConfig:
        for key in ("embedding_dim", "lstm_units", "sequence_length", "batch_size", "epochs"):
            if int(getattr(self, key)) < 1:
                raise LstmkitError(f"--{key.replace('_', '-')} must be at least 1, got {getattr(self, key)}")
        if self.max_tokens < 3:
            raise LstmkitError(f"--max-tokens must be at least 3 (padding, [UNK] and one word), got {self.max_tokens}")
        if self.output_vocab < 3:
            raise LstmkitError(
                f"--output-vocab must be at least 3 (padding, [UNK] and one word), got {self.output_vocab}"
            )
        if self.negatives < 0 or self.max_steps < 0:
            raise LstmkitError(f"--negatives and --max-steps must be >= 0, got {self.negatives} and {self.max_steps}")
        if not self.learning_rate > 0:
            raise LstmkitError(f"--learning-rate must be positive, got {self.learning_rate}")
        return self
