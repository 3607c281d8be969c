"""The settings a run of bench_train.py measures, and the grid's table (one row per setting).

A setting is one corpus, model length T, batch size B, hidden size H, direction and core count;
`--grid` measures the product of the lists given (`--corpus imdb,short --hidden 64,128,256
--directions uni,bi --cores 1,2`), every framework side by side in each. The model is the seed
notebook's (`--model seed`, today's default) or the `default` preset's minus adversarial
training (`--model default`): its options for the workers come from `lstmkit.tasks.presets.DEFAULT`.

Cores: a setting with c cores runs every worker under `taskset -c 0,..,c-1` with --threads c
(LSTMKIT_THREADS, TensorFlow's intra/inter-op pools, torch.set_num_threads) and, for one core,
XLA_FLAGS without Eigen's thread pool for the JAX-based workers (lstmkit's XLA parts, Keras on JAX).
"""

from __future__ import annotations

import itertools
import shutil
from dataclasses import asdict, dataclass

from train_data import DEFAULT_VECTORIZING, SEED_VECTORIZING, Vectorizing

ONE_CORE_XLA_FLAGS = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
PEERS = ("keras-tf", "keras-jax", "torch")
TARGET, GOAL = 3.0, 4.0  # issue #17: every row at least 3x the fastest peer, the goal 4x


@dataclass(frozen=True)
class Setting:
    corpus: str
    length: int  # the model's longest input: the vectorizer's output_sequence_length
    batch_size: int
    hidden: int
    direction: str  # "uni" | "bi"
    cores: int  # 0: not pinned, the library defaults

    def label(self) -> str:
        pinned = f"{self.cores} core{'s' if self.cores > 1 else ''}" if self.cores else "all cores"
        return f"{self.corpus} T<={self.length} B={self.batch_size} {self.direction}LSTM({self.hidden}) {pinned}"

    def as_dict(self) -> dict:
        return asdict(self)


def default_preset_options() -> list[str]:
    """The workers' options for the default preset's model, adversarial training left out."""
    from lstmkit.tasks.presets import DEFAULT

    return [
        *("--vocab", str(DEFAULT["max_tokens"]), "--embed", str(DEFAULT["embedding_dim"])),
        *("--pooling", DEFAULT["pooling"], "--dense", str(DEFAULT["dense_units"])),
        *("--word-pairs", str(DEFAULT["bigram_buckets"]), "--dropout", str(DEFAULT["dropout"])),
        *("--embedding-dropout", str(DEFAULT["embedding_dropout"])),
        *("--learning-rate", str(DEFAULT["learning_rate"]), "--clipnorm", str(DEFAULT["clipnorm"])),
        *("--weight-average", str(DEFAULT["weight_average"]), "--bucket"),
        *("--table-updates", DEFAULT["table_updates"]),  # lstmkit's; the peers' Adam is dense
    ]


def vectorizing(model: str, length: int | None) -> Vectorizing:
    base = DEFAULT_VECTORIZING if model == "default" else SEED_VECTORIZING
    return Vectorizing(base.max_tokens, length or base.length, base.strip_html)


def int_list(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v.strip()]


def settings(args) -> list[Setting]:
    """Every setting of the run: the product of the lists, corpus and length outermost (their data
    are prepared once), then B, H, direction, cores."""
    base = vectorizing(args.model, None).length
    lengths = int_list(args.lengths) if args.lengths else [base]
    directions = [d.strip() for d in args.directions.split(",") if d.strip()]
    cores = int_list(args.cores) if args.cores else [0]
    product = itertools.product(
        [c.strip() for c in args.corpus.split(",") if c.strip()],
        lengths,
        int_list(args.batch_sizes),
        int_list(args.hidden),
        directions,
        cores,
    )
    return [Setting(*values) for values in product]


def check(args, parser) -> None:
    """parser.error for the first list option out of range."""
    from train_data import CORPORA

    for name in args.corpus.split(","):
        if name.strip() not in CORPORA:
            parser.error(f"--corpus takes {','.join(CORPORA)}, got {args.corpus!r}")
    for name in args.directions.split(","):
        if name.strip() not in ("uni", "bi"):
            parser.error(f"--directions takes uni,bi, got {args.directions!r}")
    try:
        values = [*int_list(args.hidden), *int_list(args.batch_sizes), *int_list(args.cores or "1")]
        values += int_list(args.lengths or "1")
    except ValueError:
        parser.error("--hidden, --batch-sizes, --cores and --lengths take comma-separated whole numbers")
    if min(values) < 1:
        parser.error("--hidden, --batch-sizes, --cores and --lengths must be >= 1")
    if args.cores and not shutil.which("taskset"):
        parser.error("--cores needs taskset (util-linux) to pin the workers")


def left_out(setting: Setting, framework_name: str, skip: str) -> bool:
    """Whether --skip leaves this framework out of this setting.

    skip: comma-separated FRAMEWORK@CORPUS[:H[:CORES]] items, e.g. "torch@imdb:256:2" (PyTorch on
    whole IMDB reviews at H = 256 on 2 cores: minutes a batch on a shared machine), or
    "torch@imdb" for every H and core count.

    >>> left_out(Setting("imdb", 800, 64, 256, "bi", 2), "torch", "torch@imdb:256:2,torch@short:64")
    True
    >>> left_out(Setting("imdb", 800, 64, 256, "bi", 1), "torch", "torch@imdb:256:2")
    False
    """
    for item in filter(None, (i.strip() for i in skip.split(","))):
        name, _, where = item.partition("@")
        corpus, hidden, cores = (where.split(":") + ["", ""])[:3]
        matches = (corpus, hidden, cores) == tuple(
            part and str(value)
            for part, value in zip((corpus, hidden, cores), (setting.corpus, setting.hidden, setting.cores))
        )
        if name == framework_name and matches:
            return True
    return False


def worker_options(setting: Setting, model: str) -> list[str]:
    """The protocol options of one setting (after --data, --batches, --warmup)."""
    options = ["--batch-size", str(setting.batch_size), "--hidden", str(setting.hidden)]
    options += ["--direction", setting.direction, "--sequence-length", str(setting.length)]
    if setting.cores:
        options += ["--threads", str(setting.cores)]
    return options + (default_preset_options() if model == "default" else [])


def pinning(setting: Setting, framework_name: str) -> tuple[list[str], dict]:
    """(command prefix, extra environment) that gives a worker the setting's cores."""
    if not setting.cores:
        return [], {}
    prefix = ["taskset", "-c", ",".join(str(c) for c in range(setting.cores))]
    jax_based = framework_name in ("lstmkit", "keras-jax")
    return prefix, ({"XLA_FLAGS": ONE_CORE_XLA_FLAGS} if setting.cores == 1 and jax_based else {})


def grid_row(setting: Setting, summary: dict, data_info: dict) -> dict:
    """One row of the grid: ms per batch of each framework, and lstmkit against the fastest peer."""
    ms = {name: s["ms_per_batch"] for name, s in summary.items()}
    peers = {name: v for name, v in ms.items() if name in PEERS}
    fastest = min(peers, key=peers.get) if peers else None
    speedup = peers[fastest] / ms["lstmkit"] if fastest and "lstmkit" in ms else None
    return {
        "setting": setting.as_dict(),
        "mean_length": data_info["mean_length"],
        "width": data_info["width"],
        "ms_per_batch": ms,
        "fastest_peer": fastest,
        "speedup_vs_fastest_peer": speedup,
    }


def grid_table(rows: list[dict], names: list[str]) -> str:
    """Markdown: per setting, each framework's ms per batch and lstmkit's speed-up on the fastest peer."""
    head = "| corpus | T mean / padded | B | H | LSTM | cores | " + " | ".join(f"{n} ms" for n in names)
    lines = [head + " | fastest peer | lstmkit speed-up | >= 3x |", "|---" * (len(names) + 9) + "|"]
    for row in rows:
        s, ms = row["setting"], row["ms_per_batch"]
        cells = [f"{ms[n]:.1f}" if n in ms else "-" for n in names]
        x = row["speedup_vs_fastest_peer"]
        verdict = "-" if x is None else ("yes" if x >= TARGET else "no")
        lines.append(
            f"| {s['corpus']} | {row['mean_length']:.0f} / {row['width']} | {s['batch_size']} | {s['hidden']} "
            f"| {s['direction']} | {s['cores'] or 'all'} | " + " | ".join(cells) + f" | {row['fastest_peer'] or '-'} "
            f"| {'-' if x is None else f'{x:.2f}x'} | {verdict} |"
        )
    return "\n".join(lines)


def verdict(rows: list[dict]) -> str:
    """One line: how many rows meet the target and the goal."""
    measured = [r["speedup_vs_fastest_peer"] for r in rows if r["speedup_vs_fastest_peer"] is not None]
    if not measured:
        return "no row has both lstmkit and a peer"
    meets = sum(x >= TARGET for x in measured)
    goal = sum(x >= GOAL for x in measured)
    return (
        f"{meets} of {len(measured)} rows at least {TARGET:.0f}x the fastest peer ({goal} at the {GOAL:.0f}x goal); "
        f"speed-ups from {min(measured):.2f}x to {max(measured):.2f}x"
    )
