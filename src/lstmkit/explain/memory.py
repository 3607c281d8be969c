"""Memory through time: how far back a decision reaches, from the gradients `trace` computes.

Shape legend: T tokens the model reads (n_used), P = T padded, D directions of the first LSTM layer.

`lstmkit.explain.trace` computes, for the prediction z (the target class's logit), the gradient
dz/dx_t with respect to every token's embedded input and ||dz/dc_t|| with respect to the first
LSTM layer's cell after every token; this module turns them into the explanation's "memory"
entry (per-token lists for JSON and the page) and says in one number how far back they reach:

    reach = the earliest token t with ||dz/dx_t|| >= REACH_THRESHOLD * max_s ||dz/dx_s||
    tokens_back = T - 1 - reach          (0: only the last token read matters that much)
"""

from __future__ import annotations

import numpy as np

from lstmkit.explain.trace import direction_names, recurrent_indices

REACH_THRESHOLD = 0.1  # the share of the largest gradient norm that still counts as reached


def round_significant(a, digits=4):
    """Floats to `digits` significant digits, as a flat list: gradients can be small, and rounding
    to a number of decimals would zero them.

    >>> round_significant([0.000123456, 2.5])
    [0.0001235, 2.5]
    """
    return [float(f"{v:.{digits}g}") for v in np.asarray(a, np.float64).ravel()]


def memory_reach(gradient_norm, threshold=REACH_THRESHOLD):
    """(earliest, peak): the first token whose gradient norm is at least `threshold` times the
    largest, and the largest's token; None when there is no token or every norm is 0.

    >>> memory_reach([0.01, 0.3, 0.05, 1.0])
    (1, 3)
    """
    g = np.asarray(gradient_norm, np.float64)
    if not g.size or not g.max() > 0:
        return None
    return int(np.argmax(g >= threshold * g.max())), int(np.argmax(g))


def memory_view(arch, memory, words, n):
    """The explanation's "memory" entry from `explain_arrays`' memory arrays (each P or (D, P) long):

    {"gradient_norm", "gradient_x_input": n floats, "cell_layer": the first LSTM layer's index,
     "cell_gradient_norm": [{"name": direction, "values": n floats}], "reach": {"threshold",
     "earliest", "word", "tokens_back", "peak"} or None}.
    """
    k = recurrent_indices(arch)[0]
    reach = memory_reach(memory["gradient_norm"][:n])
    return {
        "gradient_norm": round_significant(memory["gradient_norm"][:n]),
        "gradient_x_input": round_significant(memory["gradient_x_input"][:n]),
        "cell_layer": k,
        "cell_gradient_norm": [
            {"name": name, "values": round_significant(memory["cell_gradient_norm"][d, :n])}
            for d, name in enumerate(direction_names(arch.layers[k]))
        ],
        "reach": None
        if reach is None
        else {
            "threshold": REACH_THRESHOLD,
            "earliest": reach[0],
            "word": words[reach[0]],
            "tokens_back": n - 1 - reach[0],
            "peak": reach[1],
        },
    }


def memory_method(target_name):
    """How the memory view was computed, in words (the explanation's methods["memory"])."""
    return (
        f"z = the logit of {target_name!r}. Per token t: ||dz/dx_t||, the gradient with respect to the token's "
        "embedded input x_t, through the model's own forward and training's backward; the gradient times the input, "
        "dz/dx_t . x_t (positive: the word's vector pushes z up); and, per direction of the first LSTM layer, "
        "||dz/dc_t||, with respect to the memory cell after token t (a plain JAX scan of the cell on the same "
        f"weights). The decision reaches back to the earliest token whose ||dz/dx_t|| is at least "
        f"{REACH_THRESHOLD:.0%} of the largest."
    )


def memory_summary(explanation):
    """One line: how far back the decision reaches (the explanation must have a reach)."""
    reach = explanation["memory"]["reach"]
    return (
        f"memory: the decision reaches back {reach['tokens_back']:,} tokens from the last one read, to token "
        f"{reach['earliest']} ({reach['word']}), the earliest whose gradient norm is at least "
        f"{reach['threshold']:.0%} of the largest (at token {reach['peak']}, {explanation['words'][reach['peak']]})"
    )
