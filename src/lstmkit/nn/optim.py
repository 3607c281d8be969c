"""Optimizers: Optax chains with clipping, schedules, weight decay and a moving average of the weights."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from lstmkit.errors import LstmkitError
from lstmkit.nn.lazy_adam import LazyAdam, LazyAdamState, assembled, averaged_tables


class WeightAverage(NamedTuple):
    """Optimizer state of `weight_average`: steps taken, and the running average of the weights."""

    count: jax.Array
    params: Any


def weight_average(decay):
    """An optax transformation that keeps an exponential moving average of the weights (Polyak).

    It passes the updates through unchanged; as the chain's last link it sees the weights each
    step produces, w = params + updates, and keeps

        avg <- d avg + (1 - d) w,    d = min(decay, (1 + n) / (10 + n)) at step n

    The warm-up of d (as TensorFlow's ExponentialMovingAverage with num_updates) lets the
    average forget the random initial weights within the first steps. The average lives in the
    optimizer state, so checkpoints and --resume keep it; `averaged_weights` reads it back.

        >>> opt = optax.chain(optax.adam(1e-3), weight_average(0.999))   # doctest: +SKIP
    """

    def init(params):
        return WeightAverage(
            jnp.zeros([], jnp.int32), jax.tree.map(jnp.copy, params)
        )  # own buffers: params are donated

    def update(updates, state, params):
        d = jnp.minimum(decay, (1.0 + state.count) / (10.0 + state.count))
        average = jax.tree.map(lambda a, p, u: d * a + (1 - d) * (p + u), state.params, params, updates)
        return updates, WeightAverage(state.count + 1, average)

    return optax.GradientTransformation(init, update)


def averaged_weights(opt_state, params=None):
    """The weight average kept by `weight_average` in an optimizer state, or None if it has none.

    A `LazyAdam` state keeps its tables' rows averaged as of their last update: it needs the
    current `params` to bring them up to date."""
    if isinstance(opt_state, LazyAdamState):
        dense = averaged_weights(opt_state.dense)
        return None if dense is None else assembled(params, dense, averaged_tables(opt_state, params))
    for s in jax.tree.leaves(opt_state, is_leaf=lambda x: isinstance(x, WeightAverage)):
        if isinstance(s, WeightAverage):
            return s.params
    return None


def apply_gradients(optimizer, grads, opt_state, params, max_rows=None):
    """One optimizer step: (new params, new state). max_rows: the most table rows a batch reads
    (B T), which lets `LazyAdam` update only those; other optimizers ignore it."""
    if isinstance(optimizer, LazyAdam):
        return optimizer.step(grads, opt_state, params, max_rows)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return jax.tree.map(lambda p, u: p + u, params, updates), opt_state


def _learning_rate(learning_rate, schedule, total_steps, warmup_steps):
    """A number (constant) or an optax schedule: linear warmup, then cosine decay to 0 at total_steps."""
    if schedule is None or schedule == "constant":
        return learning_rate
    if schedule == "cosine":
        if not total_steps:
            raise LstmkitError("a cosine schedule needs the total number of steps")
        warmup = max(1, min(warmup_steps, total_steps // 10))  # a short run must not spend itself warming up
        return optax.warmup_cosine_decay_schedule(0.0, learning_rate, warmup, max(total_steps, warmup + 1))
    raise LstmkitError(f"unknown learning-rate schedule {schedule!r}; use constant or cosine")


def make_optimizer(
    name="adam",
    learning_rate=1e-3,
    *,
    clipnorm=None,
    weight_decay=0.0,
    schedule=None,
    total_steps=None,
    warmup_steps=0,
    average=0.0,
    table_updates="dense",
):
    """An optax optimizer; Adam with Keras's defaults (lr 1e-3, eps 1e-7) unless told otherwise.

    schedule: None (constant), "cosine" (linear warmup over warmup_steps, at most a tenth of the
        run, then cosine decay to 0 at total_steps).
    weight_decay > 0 gives AdamW (decoupled decay). clipnorm clips the global gradient norm.
    average in (0, 1): also keep a moving average of the weights with this decay (see
        `weight_average`); `fit` validates and finishes with the averaged weights.
    table_updates: "dense" (every weight every step) or "rows": Adam moves only the embedding
        rows a batch read (`lstmkit.nn.lazy_adam.LazyAdam`, not an optax transformation: step it
        with `apply_gradients`); needs adam without weight decay.
    """
    lr = _learning_rate(learning_rate, schedule, total_steps, warmup_steps)
    if average and not 0.0 < average < 1.0:
        raise LstmkitError(f"--weight-average must be in (0, 1) (a decay such as 0.999) or 0 for none, got {average}")
    if table_updates == "rows":
        if name != "adam" or weight_decay:
            raise LstmkitError("--table-updates rows needs --optimizer adam and no --weight-decay; or use dense")
        dense = optax.adam(lr, eps=1e-7)  # b1, b2 as LazyAdam's tables (optax's defaults)
        dense = optax.chain(dense, weight_average(average)) if average else dense
        return LazyAdam(dense, lr, clipnorm=clipnorm or None, average=average)
    if table_updates != "dense":
        raise LstmkitError(f"unknown table updates {table_updates!r}; use dense or rows")
    if name == "adam":
        opt = optax.adamw(lr, eps=1e-7, weight_decay=weight_decay) if weight_decay else optax.adam(lr, eps=1e-7)
    elif name == "sgd":
        opt = optax.sgd(lr)
    else:
        raise LstmkitError(f"unknown optimizer {name!r}; use adam or sgd")
    if clipnorm:
        opt = optax.chain(optax.clip_by_global_norm(clipnorm), opt)
    if average:
        opt = optax.chain(opt, weight_average(average))
    return opt


@dataclass(frozen=True)
class OptimizerSettings:
    """`make_optimizer`'s arguments as one immutable, hashable value; `make()` builds the optax chain.

    Two models whose settings are equal trace the same update, so their compiled training steps
    are shared. Settings a schedule does not read are normalised away: with a constant learning
    rate, total_steps and warmup_steps are dropped, so they do not tell equal optimizers apart.

        >>> OptimizerSettings("adam", 1e-3) == OptimizerSettings("adam", 1e-3, total_steps=99)
        True
    """

    name: str = "adam"
    learning_rate: float = 1e-3
    clipnorm: float | None = None
    weight_decay: float = 0.0
    schedule: str | None = None
    total_steps: int | None = None
    warmup_steps: int = 0
    average: float = 0.0
    table_updates: str = "dense"

    def __post_init__(self):
        if self.schedule in (None, "constant"):
            object.__setattr__(self, "schedule", None)
            object.__setattr__(self, "total_steps", None)
            object.__setattr__(self, "warmup_steps", 0)
        object.__setattr__(self, "clipnorm", self.clipnorm or None)
        self.make()  # the checks of make_optimizer, at once

    def make(self):
        """The optax transformation these settings describe."""
        return make_optimizer(
            self.name,
            self.learning_rate,
            clipnorm=self.clipnorm,
            weight_decay=self.weight_decay,
            schedule=self.schedule,
            total_steps=self.total_steps,
            warmup_steps=self.warmup_steps,
            average=self.average,
            table_updates=self.table_updates,
        )
