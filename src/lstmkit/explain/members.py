"""An ensemble's explanation: the members' probabilities averaged, the first member's insides.

Shape legend: K outputs (1 for a binary sigmoid model), P padded tokens.

`Sequential.predict` gives an ensemble's probability as the mean of its members'. Explain does the
same for everything it says about the output: the probability, the trajectory (each prefix's
mean probability) and the attribution (the log-odds of the mean probability with and without
the word). The gates, states and gradients it draws are the first member's: the members'
units are not the same units, so their gates cannot be averaged.
"""

from __future__ import annotations

import jax
import numpy as np

from lstmkit.explain.trace import explain_arrays, output_arrays

EPS = 1e-12  # float64: keeps log(p) and log(1 - p) finite for a saturated mean


def mean_logits(member_logits, activation):
    """The logits (..., K) whose activation gives the mean of the members' probabilities.

    sigmoid (one per output, binary or multi-label): logit(mean sigmoid(z_m));
    softmax: log(mean softmax(z_m)), which softmax maps back to the mean.

        >>> mean_logits([np.array([0.0]), np.array([0.0])], "sigmoid")
        array([0.])
    """
    z = np.stack([np.asarray(a, np.float64) for a in member_logits])
    if activation == "sigmoid":
        p = np.clip((1.0 / (1.0 + np.exp(-z))).mean(0), EPS, 1.0 - EPS)
        return np.log(p) - np.log1p(-p)
    e = np.exp(z - z.max(-1, keepdims=True))
    return np.log(np.clip((e / e.sum(-1, keepdims=True)).mean(0), EPS, 1.0))


def ensemble_arrays(arch, members, ids, target, activation):
    """`explain_arrays` of the first member, with its logits, trajectory and occluded logits
    replaced by the ensemble's (`mean_logits` over every member's, the others' from
    `output_arrays`: their gates and gradients are not shown); host arrays."""
    first = jax.device_get(explain_arrays(arch, members[0], ids, target))
    if len(members) == 1:
        return first
    others = [jax.device_get(output_arrays(arch, params, ids)) for params in members[1:]]  # no gradients
    logits, traces, trajectory, occluded, memory = first
    logits, trajectory, occluded = (
        mean_logits([mine] + [o[i] for o in others], activation)
        for i, mine in enumerate((logits, trajectory, occluded))
    )
    return logits, traces, trajectory, occluded, memory


def ensemble_note(n_members):
    """The page's remark on an ensemble's explanation ([] for one model)."""
    if n_members == 1:
        return []
    return [
        f"This model is an ensemble of {n_members} members trained alike with different seeds: the probability, "
        "trajectory and attribution are of their averaged probabilities, as predict gives them; the gates, "
        "states and memory shown are the first member's."
    ]
