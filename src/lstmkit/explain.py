"""See inside a trained text classifier: gate traces, a sentiment trajectory, token attributions.

Shape legend: T tokens the model reads, P = T padded up to a multiple of CHUNK, D directions,
H hidden units, K outputs (1 for a binary sigmoid model), N rows of a batch.

`explain(model, text)` returns one JSON-able dict with three things, all computed by one jitted
function per padded length P (a text of T tokens is right-padded with id 0, which the Embedding
masks, so a masked step changes nothing):

1. The traced forward pass. The layers run in order on the text's ids, as `Sequential.apply` runs
   them, except that each LSTM layer goes through the plain forward functions of `lstmkit.bptt`
   (`input_projection_forward`, then `recurrence_forward`), which hand back every step's gates
   i, f, g, o and the states c and h. The trained computation is unchanged; the only difference to
   the fast path is that the embedding row is looked up before it is projected, where the fast path
   projects the whole table first (equal up to float rounding: a test checks that the probability
   equals `model.predict`). Gates come per LSTM layer, per direction, per token in *text order*:
   for a backward direction, the row of token t holds the step at which it read token t. Summaries
   per token: the mean forget gate over the units, and the cell norm ||c_t||.

2. The trajectory: p_t, the probability the model would give if the review ended at token t, for
   t = 0 .. T-1. It is always the probability of running the model on the prefix ids[:t+1]:
   - for a causal model (forward LSTMs only, read by Dense layers), the state after token t *is*
     the state of the prefix, so p_t is the Dense head applied to the last LSTM layer's traced h_t;
   - for any other model (bidirectional, go_backwards, pooling over time), the model itself runs
     on every prefix, as one batch of P rows (row t holds ids[:t+1], then padding), in chunks of
     CHUNK rows, through the layers' own `apply` (`apply_compact`: the fused Embedding->LSTM path
     of `Sequential.apply`, with the embedding rows of this text gathered once). For a
     bidirectional model the backward direction of row t reads that prefix from token t back to
     token 0: what the model would see if the review stopped at t, not the backward states of the
     whole text.
   Either way the last point is the probability of the whole (read) text.

3. The attribution, by occlusion: a_t = logodds(text) - logodds(text with token t replaced by
   [UNK]), where logodds = log(p / (1 - p)) of the target class, taken from the logits. It is how
   much the evidence for the target class drops if the model did not know the word at t. a_t > 0:
   the word pushed the prediction towards the target class; a_t < 0: away from it. A word already
   unknown gets 0. Log-odds rather than probabilities, because a confident prediction (p = 0.99)
   barely moves in probability when one word goes, though its evidence does. One more batch of P
   rows, row t the text with token t replaced.

The target class is class 1 for a binary model (p is the sigmoid output) and the predicted class
for a softmax model.

Texts longer than the model's sequence length L are truncated exactly as in training and predict:
the model reads the first L tokens. Every token is still listed (with `n_used` and `truncated`), so
the page can grey out the unread ones. An empty text (or one with only punctuation) is read as all
padding: the probability is then the model's answer to nothing, and the trajectory is empty.

Cost: the traced pass is O(T); the trajectory and the occlusion run P rows of P steps, O(T^2)
token-steps each, in one compiled program. See docs/lstm.md for timings.
"""

from __future__ import annotations

import html as html_lib
import json
from functools import partial
from importlib import resources

import jax
import jax.numpy as jnp
import numpy as np

from lstmkit import bptt
from lstmkit import layers as L
from lstmkit.atomic import write_bytes, write_with
from lstmkit.errors import LstmkitError
from lstmkit.lstm import merge

CHUNK = 64  # rows per batch of prefixes or occlusions; P is a multiple of it
UNK_ID = 1
GATES = ("i", "f", "g", "o")
STATES = ("c", "h")
TEMPLATE = "explain_page.html"


# -- the traced forward pass ---------------------------------------------------------------------


def traced_lstm(layer, params, x, mask):
    """Run an `LSTM` or `Bidirectional` layer through the plain forward functions, keeping the gates.

    Args:
        layer: `layers.LSTM` or `layers.Bidirectional`; params: its parameters.
        x: (B, T, E) inputs; mask: (B, T) bool or None.

    Returns:
        out, out_mask: the layer's output exactly as `layer.apply` gives it;
        trace: {"i", "f", "g", "o", "c", "h"}, each (D, B, T, H) in time order.
    """
    if isinstance(layer, L.Bidirectional):
        lstm, directions, reverse = layer.layer, [params["forward"], params["backward"]], (False, True)
    else:
        lstm, directions, reverse = layer, [params], (layer.go_backwards,)
    B, T, _ = x.shape
    D, H = len(directions), lstm.units
    if mask is None:
        mask = jnp.ones((B, T), bool)
    W_x = jnp.stack([p["W_x"] for p in directions])  # (D, E, 4H)
    W_h = jnp.stack([p["W_h"] for p in directions])  # (D, H, 4H)
    b = jnp.stack([p["b"] for p in directions])  # (D, 4H)
    x_s = bptt.scan_order(jnp.swapaxes(x, 0, 1), reverse)  # (T, D, B, E), scan order
    z_x = bptt.input_projection_forward(W_x, b, x_s)  # (T, D, B, 4H)
    m_s = bptt.scan_order(jnp.swapaxes(mask, 0, 1)[..., None], reverse)  # (T, D, B, 1)
    zeros = jnp.zeros((D, B, H), x.dtype)
    (y, h_T, _), (gates, h_seq, c_seq) = bptt.recurrence_forward(W_h, z_x, m_s, zeros, zeros)
    hs = jnp.transpose(bptt.time_order(y, reverse), (1, 2, 0, 3))  # (D, B, T, H)
    if isinstance(layer, L.Bidirectional):
        out = merge(hs[0], hs[1], layer.merge_mode) if lstm.return_sequences else merge(h_T[0], h_T[1], layer.merge_mode)
    else:
        out = hs[0] if lstm.return_sequences else h_T[0]
    i, f, g, o = jnp.split(gates, 4, axis=-1)  # the kernel keeps the gates as one array [i f g o]
    steps = {"i": i, "f": f, "g": g, "o": o, "c": c_seq, "h": h_seq}  # each (T, D, B, H) in scan order
    trace = {k: jnp.transpose(bptt.time_order(a, reverse), (1, 2, 0, 3)) for k, a in steps.items()}
    return out, (mask if lstm.return_sequences else None), trace


def traced_forward(model, params, ids):
    """Logits (B, K) of the final Dense layer and one trace per LSTM layer, for ids (B, T); see
    `traced_lstm`. The probabilities are the final layer's activation of the logits."""
    x, mask, traces = ids, None, []
    last = len(model.layers) - 1
    for k, (layer, p) in enumerate(zip(model.layers, params)):
        if isinstance(layer, (L.LSTM, L.Bidirectional)):
            x, mask, trace = traced_lstm(layer, p, x, mask)
            traces.append(trace)
        elif k == last:
            x = layer.logits(p, x)
        else:
            x, mask = layer.apply(p, x, mask, key=None)
    return x, traces


def _recurrent_indices(model):
    return [k for k, layer in enumerate(model.layers) if isinstance(layer, (L.LSTM, L.Bidirectional))]


def is_causal(model):
    """True when the state after token t depends on tokens 0..t only and the head reads that state:
    forward LSTMs only, and nothing but Dense and Dropout after the last one."""
    rec = _recurrent_indices(model)
    if not rec:
        return False
    if any(isinstance(model.layers[k], L.Bidirectional) or model.layers[k].go_backwards for k in rec):
        return False
    if model.layers[rec[-1]].return_sequences:
        return False
    return all(isinstance(layer, (L.Dense, L.Dropout)) for layer in model.layers[rec[-1] + 1 :])


def apply_compact(model, params, ids, table):
    """`model.apply(..., logits=True)` on ids into a smaller `table` holding the rows they need: (B, K).

    Every row of a batch of prefixes or occlusions reads the same few tokens, so their rows are
    gathered once into `table` (one per text position, plus padding and [UNK]) and the first LSTM
    projects that table instead of the Embedding's (the fused path of `Sequential.apply`, through the
    layers' own `apply`). Dropout layers are the identity at inference and are skipped.
    """
    layers = model.layers
    mask = (ids != 0) if layers[0].mask_zero else None
    k = 1
    while k < len(layers) and isinstance(layers[k], L.Dropout):  # SpatialDropout1D is a Dropout
        k += 1
    if k < len(layers) and isinstance(layers[k], (L.LSTM, L.Bidirectional)):
        x, mask = layers[k].apply(params[k], ids, mask, embedding=table)
        k += 1
    else:
        x = jnp.take(table, ids, axis=0)
    for layer, p in zip(layers[k:-1], params[k:-1]):
        x, mask = layer.apply(p, x, mask, key=None)
    return layers[-1].logits(params[-1], x)


def _batched_apply(model, params, rows, table):
    """`apply_compact` over (P, P) ids in chunks of CHUNK rows: (P, K) logits."""
    P = rows.shape[0]
    chunks = rows.reshape(P // CHUNK, CHUNK, rows.shape[1])
    return jax.lax.map(lambda batch: apply_compact(model, params, batch, table), chunks).reshape(P, -1)


@partial(jax.jit, static_argnums=(0,))
def _explain_arrays(model, params, ids):
    """Everything numerical for one padded text ids (P,): see the module docstring."""
    P = ids.shape[0]
    logits, traces = traced_forward(model, params, ids[None])
    t = jnp.arange(P)
    # Position j of the text is row j + 2 of a compact table; 0 stays padding, 1 is [UNK].
    table = params[0]["table"]
    compact_table = jnp.concatenate([table[:2], jnp.take(table, ids, axis=0, mode="clip")])  # (P + 2, E)
    compact = jnp.where(ids != 0, t + 2, 0)
    if is_causal(model):
        head = model.layers[_recurrent_indices(model)[-1] + 1 :]
        head_params = params[len(model.layers) - len(head) :]
        x = traces[-1]["h"][0, 0]  # (P, H): the last layer's h after each token
        for layer, p in zip(head[:-1], head_params[:-1]):
            x, _ = layer.apply(p, x, None, key=None)
        trajectory = head[-1].logits(head_params[-1], x)
    else:
        prefixes = jnp.where(t[None, :] <= t[:, None], compact[None, :], 0)  # row t: tokens 0..t, then padding
        trajectory = _batched_apply(model, params, prefixes, compact_table)
    occluded = jnp.where(t[None, :] == t[:, None], UNK_ID, compact[None, :])  # row t: token t -> [UNK]
    occluded_logits = _batched_apply(model, params, occluded, compact_table)
    traces = [{k: a[:, 0] for k, a in trace.items()} for trace in traces]  # (D, P, H), batch of one
    return logits[0], traces, trajectory, occluded_logits


# -- tokens ----------------------------------------------------------------------------------


def _words(vectorizer, text, tokens):
    """The original words behind the tokens, when they can be paired one to one; else the tokens.

    With whitespace splitting and no ngrams, each whitespace-separated piece of the text becomes
    one token or none (a piece of punctuation only), so the pieces that give a token are the words.
    """
    if vectorizer.split != "whitespace" or vectorizer.ngrams is not None:
        return list(tokens)
    from lstmkit.text import strip_html_breaks

    if vectorizer.strip_html:
        text = strip_html_breaks(text)
    words, got = [], []
    for piece in text.encode("utf-8", "surrogatepass").split():  # the ASCII blanks, as the vectorizer splits
        word = piece.decode("utf-8", "surrogatepass")
        toks = vectorizer.tokenize(word)
        if len(toks) == 1:
            words.append(word)
            got.append(toks[0])
        elif toks:
            return list(tokens)
    return words if got == list(tokens) else list(tokens)


def log_odds(logits, target):
    """log(p / (1 - p)) of the target class from logits (..., K), without forming p (no saturation)."""
    z = np.asarray(logits, np.float64)
    if z.shape[-1] == 1:
        return z[..., 0] if target == 1 else -z[..., 0]
    others = np.delete(z, target, axis=-1)
    m = others.max(-1, keepdims=True)
    return z[..., target] - (m[..., 0] + np.log(np.exp(others - m).sum(-1)))


def _round(a, digits=4):
    return np.round(np.asarray(a, np.float64), digits).tolist()


# -- the explanation -----------------------------------------------------------------------------


def _inference_view(model):
    """The model without a leading WordDropout (the identity at inference), so the Embedding is
    layer 0; the same weights. Kept on the model, so repeated explains reuse its compiled code."""
    if not model.layers or not isinstance(model.layers[0], L.WordDropout):
        return model
    view = getattr(model, "_explain_view", None)
    if view is None:
        from lstmkit.model import Sequential

        view = Sequential(model.layers[1:], class_names=model.class_names, inference_length=model.inference_length)
        view.vectorizer = model.vectorizer
        model._explain_view = view
    view.params = model.params[1:]
    return view


def explain(model, text):
    """Explain one prediction of a text classifier; returns a JSON-able dict.

    Args:
        model: a `Sequential` with a TextVectorizer and weights (e.g. `checkpoint.load_model(dir)`),
            whose first layer is an Embedding (mask_zero=True, so padding is masked).
        text: the text to explain.

    Returns:
        A dict with, among others:
            label, probability (of that label), probabilities (K), class_names, target_class;
            tokens, words, ids, known (one entry per token of the text, read or not);
            n_tokens, n_used (tokens the model reads), sequence_length, truncated, empty;
            trajectory (n_used): the target probability if the text ended at each token;
            attribution (n_used): occlusion, the target's log-odds minus its log-odds with the
                token replaced by [UNK];
            layers: per LSTM layer {"index", "type", "units", "directions": [{"name", "i", "f",
                "g", "o", "c", "h" (each n_used x H), "mean_forget", "cell_norm" (n_used)}]};
            methods: how the trajectory and the attribution were computed; notes: plain-language
            remarks for the page (truncation, empty text, unknown words).

    >>> # doctest: +SKIP
    >>> e = explain(load_model("runs/seed"), "A great film.")
    >>> e["label"], len(e["trajectory"]), sorted(e["layers"][0]["directions"][0])[:3]
    ('pos', 3, ['c', 'cell_norm', 'f'])
    """
    if model.params is None:
        raise LstmkitError("the model has no weights; load a trained model or fit one first")
    model = _inference_view(model)
    v = model.vectorizer
    if v is None:
        raise LstmkitError("explain needs a model that reads text (a TextVectorizer first); this one takes token ids")
    if not model.layers or not isinstance(model.layers[0], L.Embedding):
        raise LstmkitError("explain needs an Embedding as the first layer after the TextVectorizer")
    if not _recurrent_indices(model):
        raise LstmkitError("the model has no LSTM layer to trace")
    if not isinstance(text, str):
        raise LstmkitError(f"explain takes one text (a str), got {type(text).__name__}")
    head = model.layers[-1]
    if not isinstance(head, L.Dense) or (head.activation, head.units > 1) not in (("sigmoid", False), ("softmax", True)):
        raise LstmkitError("explain needs a classifier: a last Dense layer with 1 unit and sigmoid, or K units and softmax")

    tokens = v.tokenize(text)  # every token of the text, before truncation
    used = np.asarray(model._ids([text], inference=True)[0], np.int32)  # the ids the model reads, as predict does
    n = len(used)
    index = {t: k for k, t in enumerate(v.vocabulary)}
    ids_all = [index.get(tok, UNK_ID) for tok in tokens]
    if ids_all[:n] != used.tolist():  # cannot happen with a consistent vectorizer; trust the model's ids
        ids_all = used.tolist() + ids_all[n:]
    words = _words(v, text, tokens)
    P = max(CHUNK, -(-n // CHUNK) * CHUNK)
    padded = np.zeros(P, np.int32)
    padded[:n] = used

    logits, traces, trajectory, occluded = jax.device_get(_explain_arrays(model, model.params, padded))
    activate = L.ACTIVATIONS[head.activation]  # the model's own output activation, as predict applies it
    proba = np.asarray(activate(jnp.asarray(logits)), np.float64)
    K = proba.shape[-1]
    names = list(model.class_names) if model.class_names else [str(k) for k in range(max(K, 2))]
    if K == 1:  # binary: p is the probability of class 1, and its log-odds is the logit itself
        target, probabilities = 1, [1.0 - float(proba[0]), float(proba[0])]
    else:
        target, probabilities = int(np.argmax(proba)), proba.tolist()
    label_k = int(np.argmax(probabilities))
    p_target = float(probabilities[target])
    traj = np.asarray(activate(jnp.asarray(trajectory[:n])), np.float64)[:, min(target, K - 1)]
    attribution = log_odds(logits, target) - log_odds(np.asarray(occluded)[:n], target)
    attribution[used == UNK_ID] = 0.0  # replacing [UNK] by [UNK] changes nothing; exact zero

    layer_out = []
    for k, trace in zip(_recurrent_indices(model), traces):
        layer = model.layers[k]
        lstm = layer.layer if isinstance(layer, L.Bidirectional) else layer
        dir_names = ["forward", "backward"] if isinstance(layer, L.Bidirectional) else ["backward" if lstm.go_backwards else "forward"]
        directions = []
        for d, name in enumerate(dir_names):
            entry = {"name": name}
            for key in GATES + STATES:
                entry[key] = _round(trace[key][d, :n])
            entry["mean_forget"] = _round(trace["f"][d, :n].mean(-1) if n else [])
            entry["cell_norm"] = _round(np.linalg.norm(trace["c"][d, :n], axis=-1) if n else [])
            directions.append(entry)
        layer_out.append({"index": k, "type": type(layer).__name__, "units": lstm.units, "directions": directions})

    L_seq = model.inference_length or v.output_sequence_length
    n_unknown = int(np.sum(used == UNK_ID))
    notes = []
    if not tokens:
        notes.append("The text is empty after standardization (no words, or punctuation only). The model reads only "
                     "padding, so its answer is the same for every empty text; there is no trajectory and no attribution.")  # fmt: skip
    if len(tokens) > n:
        notes.append(f"The text has {len(tokens):,} tokens but the model reads only the first {n:,} (its "
                     f"{'inference' if model.inference_length else 'sequence'} length is {L_seq}), as in training and predict; the greyed tokens after that were not read and cannot matter.")  # fmt: skip
    if n and n_unknown == n:
        notes.append(f"None of the {n:,} tokens read is in the model's vocabulary of {v.vocab_size:,} ids: each is read as "
                     "[UNK], so the prediction cannot depend on which words they are, and every attribution is 0.")  # fmt: skip
    elif n_unknown:
        notes.append(f"{n_unknown:,} of the {n:,} tokens read are outside the vocabulary ({v.vocab_size:,} ids) and are read as "
                     "[UNK] (shown underlined dotted); their attribution is 0.")  # fmt: skip
    if not model.layers[0].mask_zero:
        notes.append("This model's Embedding does not mask padding (mask_zero=False): padded steps are read as tokens, "
                     "so the numbers depend on padding, as they do in predict.")  # fmt: skip

    causal = is_causal(model)
    methods = {
        "trajectory": (
            "p_t = the model's probability for the prefix ids[:t+1]. The model is causal (forward LSTMs then Dense), "
            "so p_t is the Dense head applied to the last LSTM layer's state h_t from the traced pass."
            if causal
            else "p_t = the model's probability for the prefix ids[:t+1]: the model runs on every prefix, one padded batch "
            "(row t = tokens 0..t). A backward direction reads each prefix from token t back to the first token."
        ),
        "attribution": f"occlusion: a_t = log-odds of {names[target]!r} for the text minus its log-odds with token t "
        f"replaced by [UNK], log-odds = log(p / (1 - p)) from the logits. Positive: the word pushed towards {names[target]!r}.",
        "trace": "each LSTM layer run with lstmkit.bptt's plain forward functions (input_projection_forward, "
        "recurrence_forward); gates in text order per direction.",
    }
    return {
        "text": text,
        "label": names[label_k],
        "probability": float(probabilities[label_k]),
        "probabilities": [float(p) for p in probabilities],
        "class_names": names,
        "target_class": names[target],
        "target_probability": p_target,
        "tokens": list(tokens),
        "words": words,
        "ids": [int(i) for i in ids_all],
        "known": [int(i) != UNK_ID for i in ids_all],
        "n_tokens": len(tokens),
        "n_used": n,
        "sequence_length": L_seq,
        "truncated": len(tokens) > n,
        "empty": not tokens,
        "vocab_size": v.vocab_size,
        "trajectory": _round(traj),
        "attribution": _round(attribution),
        "layers": layer_out,
        "methods": methods,
        "notes": notes,
    }


def summary(explanation, top=5):
    """A few lines of text: label, probability, the strongest words either way."""
    e = explanation
    lines = [f"label: {e['label']}  (probability {e['probability']:.4f})"]
    if e["truncated"]:
        lines.append(f"read {e['n_used']:,} of {e['n_tokens']:,} tokens (the model's sequence length is {e['sequence_length']})")
    elif e["empty"]:
        lines.append("empty text: no tokens to read")
    a = np.asarray(e["attribution"])
    if a.size:
        words = e["words"][: e["n_used"]]
        order = np.argsort(a)
        pos = [f"{words[k]} ({a[k]:+.3f})" for k in order[::-1][:top] if a[k] > 0]
        neg = [f"{words[k]} ({a[k]:+.3f})" for k in order[:top] if a[k] < 0]
        target = e["target_class"]
        lines.append(f"towards {target} (occlusion, change in log-odds): " + (", ".join(pos) if pos else "none"))
        lines.append(f"away from {target}: " + (", ".join(neg) if neg else "none"))
    for note in e["notes"]:
        lines.append(f"note: {note}")
    return "\n".join(lines)


# -- the HTML page ---------------------------------------------------------------------------


def render_html(explanation):
    """The self-contained page (inline CSS, JS and data; nothing fetched) as a string."""
    template = resources.files("lstmkit").joinpath(TEMPLATE).read_text(encoding="utf-8")
    # Inside <script type="application/json"> only "</" could end the element: escape every "<".
    data = json.dumps(explanation, ensure_ascii=False, separators=(",", ":"))
    data = data.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    data = data.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    title = html_lib.escape(f"lstmkit explain: {explanation['label']} ({explanation['probability']:.3f})")
    return template.replace("__TITLE__", title).replace("__DATA__", data)



def save_html(explanation, path):
    """Write the page; returns the path."""
    return write_bytes(path, render_html(explanation).encode("utf-8"))


# -- the PNG ---------------------------------------------------------------------------------


def _attribution_colours(a):
    """RGBA per token: blue towards the target class, red away, white at 0 (scaled by max |a|)."""
    import matplotlib

    a = np.asarray(a, np.float64)
    scale = max(float(np.abs(a).max()) if a.size else 0.0, 1e-6)
    return matplotlib.colormaps["RdBu"](0.5 + 0.5 * np.clip(a / scale, -1, 1) * 0.85)


def save_png(explanation, path, *, layer=-1, direction=0, max_words=600):
    """Draw the explanation with matplotlib (Agg): the words coloured by attribution, the trajectory,
    the mean forget gate and cell norm, and heat maps (units x tokens) of i, f, g, o, c, h for one
    LSTM layer (default the last) and direction (default the first, forward)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    e = explanation
    n = e["n_used"]
    lay = e["layers"][layer]
    dr = lay["directions"][min(direction, len(lay["directions"]) - 1)]

    # Lay the words out first, in monospace: chars per line from the axis width in points.
    fig_w, font = 14.0, 7.5
    per_line = int(fig_w * 0.94 * 72 / (0.6 * font)) - 2
    placed, x, y = [], 0, 0
    for k, word in enumerate(e["words"][:max_words]):
        w = word if len(word) < 40 else word[:37] + "..."
        if x + len(w) > per_line and x > 0:
            x, y = 0, y + 1
        placed.append((x, y, w, k))
        x += len(w) + 1
    lines = y + 1 if placed else 1
    extra = ([f"... {len(e['words']) - max_words:,} more words not drawn"] if len(e["words"]) > max_words else []) + ["note: " + s for s in e["notes"]]
    text_h = 0.4 + 0.16 * (lines + 1.6 * len(extra))
    heights = [text_h, 2.3, 1.5, 1.9, 1.9, 1.9]
    fig = plt.figure(figsize=(fig_w, sum(heights) + 1.6))
    grid = fig.add_gridspec(6, 2, height_ratios=heights, hspace=0.6, wspace=0.16)
    title = f"{e['label']} (probability {e['probability']:.3f})   {n:,} of {e['n_tokens']:,} tokens read"
    fig.suptitle("lstmkit explain: " + title, fontsize=13, y=1 - 0.12 / (sum(heights) + 1.6))

    # 1. the words, each read word on its attribution's colour; unread words grey.
    ax = fig.add_subplot(grid[0, :])
    ax.set_axis_off()
    ax.set_title(f"words coloured by occlusion attribution, in log-odds (blue: towards {e['target_class']!r}, red: away; grey: not read)",
                 fontsize=10, loc="left")  # fmt: skip
    colours = _attribution_colours(e["attribution"])
    for x, y, w, k in placed:
        read = k < n
        box = {"facecolor": colours[k] if read else "#eeeeee", "edgecolor": "none", "pad": 0.8}
        ax.text(x, y, w, family="monospace", fontsize=font, va="top", color="black" if read else "#999999", bbox=box)
    for k, line in enumerate(extra):
        ax.text(0, lines + 0.4 + 1.6 * k, line, fontsize=font + 0.5, va="top", color="#8a4b00")
    ax.set_xlim(-0.5, per_line + 0.5)
    ax.set_ylim(lines + 1.6 * len(extra), -0.6)

    # 2. the trajectory, with the attribution as bars on its own axis.
    ax = fig.add_subplot(grid[1, :])
    steps = np.arange(n)
    if n:
        bars = ax.twinx()
        a = np.asarray(e["attribution"])
        amax = max(float(np.abs(a).max()), 1e-6) * 1.1
        bars.bar(steps, a, color=_attribution_colours(a), width=1.0, alpha=0.9)
        bars.set_ylim(-amax, amax)
        bars.set_ylabel("attribution (log-odds)", fontsize=8)
        ax.set_zorder(bars.get_zorder() + 1)
        ax.patch.set_visible(False)
        ax.plot(steps, e["trajectory"], color="black", lw=1.4, label=f"p({e['target_class']}) if the text ended here")
        ax.axhline(0.5, color="grey", lw=0.6, ls="--")
        ax.set_xlim(-0.5, n - 0.5)
        ax.legend(loc="upper left", fontsize=8)
    else:
        ax.text(0.5, 0.5, "no tokens read: no trajectory", ha="center", va="center", transform=ax.transAxes)
    ax.set_ylim(0, 1)
    ax.set_ylabel("probability")
    ax.set_title("trajectory (line) and attribution (bars)", fontsize=10, loc="left")
    ax.grid(alpha=0.3)

    # 3. mean forget gate and cell norm.
    ax = fig.add_subplot(grid[2, :])
    if n:
        ax.plot(steps, dr["mean_forget"], color="#21918c", lw=1.2, label="mean forget gate (left)")
        ax.set_ylim(0, 1)
        ax.set_xlim(-0.5, n - 0.5)
        norm = ax.twinx()
        norm.plot(steps, dr["cell_norm"], color="#b2182b", lw=1.2, label="cell norm ||c|| (right)")
        norm.set_ylim(0, max(max(dr["cell_norm"]), 1e-6) * 1.1)
        ax.legend(handles=ax.get_lines() + norm.get_lines(), loc="lower right", fontsize=8)
    ax.set_title(f"mean forget gate and cell norm   (layer {lay['index']}, {dr['name']})", fontsize=10, loc="left")
    ax.grid(alpha=0.3)

    # 4. heat maps, units x tokens.
    specs = [("i", "input gate i", "viridis", 0, 1), ("f", "forget gate f", "viridis", 0, 1),
             ("g", "candidate g", "RdBu", -1, 1), ("o", "output gate o", "viridis", 0, 1),
             ("c", "cell c", "RdBu", None, None), ("h", "hidden h", "RdBu", -1, 1)]  # fmt: skip
    for k, (key, name, cmap, lo, hi) in enumerate(specs):
        ax = fig.add_subplot(grid[3 + k // 2, k % 2])
        m = np.asarray(dr[key], np.float64).reshape(n, -1).T if n else np.full((lay["units"], 1), np.nan)
        if lo is None:
            hi = max(float(np.nanmax(np.abs(m))) if n else 1.0, 1e-6)
            lo = -hi
        im = ax.imshow(m, aspect="auto", cmap=cmap, vmin=lo, vmax=hi, interpolation="nearest")
        if not n:
            ax.text(0.5, 0.5, "no tokens read", ha="center", va="center", transform=ax.transAxes)
        ax.set_title(f"{name}   (layer {lay['index']}, {dr['name']})", fontsize=9, loc="left")
        ax.set_ylabel("unit")
        if k >= 4:
            ax.set_xlabel("token")
        fig.colorbar(im, ax=ax, fraction=0.03, pad=0.01)
    fig.subplots_adjust(left=0.045, right=0.965, top=1 - 0.75 / fig.get_figheight(), bottom=0.45 / fig.get_figheight())
    try:
        return write_with(path, lambda tmp: fig.savefig(tmp, dpi=90, format="png"), suffix=".png")
    finally:
        plt.close(fig)


# -- a model from imported weights -----------------------------------------------------------


def model_from_weights(embedding, lstm_layers, dense, vocabulary, *, sequence_length=None, pooling="last",
                       dense_layout="keras", activations=None, class_names=None,
                       standardize="lower_and_strip_punctuation", strip_html=False):  # fmt: skip
    """A `Sequential` text classifier around weights trained elsewhere (PyTorch, Keras), for explain.

    Args:
        embedding: (V, E) table; row 0 is padding and is masked (mask_zero=True), row 1 is [UNK].
        lstm_layers: lstmkit layer params, as `interop.from_torch_state_dict` returns them, or a
            list of `interop.from_keras_lstm` / `from_keras_bidirectional` results: each
            {"W_x", "W_h", "b"} or {"forward": ..., "backward": ...} (then Bidirectional, concat).
        dense: [(W, b), ...] the classifier head, first to last. W is (in, out) with
            dense_layout="keras", or (out, in) with "torch" (nn.Linear.weight).
        vocabulary: tokens by id (a leading '' and '[UNK]' are added when missing), or a
            TextVectorizer with its vocabulary set.
        sequence_length: L, the number of tokens the model reads (None: all).
        pooling: "last" (final states, as torch's h_n or Keras's default), "max", "mean", "maxmean"
            (over the last layer's outputs).
        activations: one per Dense layer; default relu for hidden ones, and sigmoid for a
            1-unit last layer or softmax for K units.
        class_names: names of the output classes (default "0", "1", ...).

    Returns:
        A built `Sequential` (vectorizer, Embedding, LSTM layers, pooling, Dense head) that
        `explain`, `predict` and `save` take.
    """
    from lstmkit.interop import as_numpy
    from lstmkit.lstm import check_params
    from lstmkit.model import Sequential
    from lstmkit.text import TextVectorizer

    table = as_numpy(embedding, "embedding").astype(np.float32)  # torch tensors are detached first
    if table.ndim != 2:
        raise LstmkitError(f"embedding must be a (V, E) table, got shape {table.shape}")
    if isinstance(lstm_layers, dict):
        lstm_layers = [lstm_layers]
    if not lstm_layers:
        raise LstmkitError("model_from_weights needs at least one LSTM layer")
    if pooling not in ("last", "max", "mean", "maxmean"):
        raise LstmkitError(f"unknown pooling {pooling!r}; use last, max, mean or maxmean")
    if dense_layout not in ("keras", "torch"):
        raise LstmkitError(f"dense_layout must be 'keras' (W is (in, out)) or 'torch' (W is (out, in)), got {dense_layout!r}")
    if isinstance(vocabulary, TextVectorizer):
        vectorizer = vocabulary
        if sequence_length is not None:
            vectorizer.output_sequence_length = int(sequence_length)
    else:
        vectorizer = TextVectorizer(standardize=standardize, output_sequence_length=sequence_length, strip_html=strip_html)
        vectorizer.set_vocabulary(list(vocabulary))
    if vectorizer.vocab_size > table.shape[0]:
        raise LstmkitError(f"the vocabulary has {vectorizer.vocab_size} ids but the embedding only {table.shape[0]} rows")

    layers, params = [L.Embedding(table.shape[0], table.shape[1], mask_zero=True)], [{"table": jnp.asarray(table)}]
    width = table.shape[1]
    pooled = pooling != "last"
    for k, layer_params in enumerate(lstm_layers):
        last = k == len(lstm_layers) - 1
        bidirectional = isinstance(layer_params, dict) and set(layer_params) == {"forward", "backward"}
        directions = [layer_params["forward"], layer_params["backward"]] if bidirectional else [layer_params]
        converted = []
        for d, p in enumerate(directions):
            _, H = check_params(p, f"LSTM layer {k}{' backward' if d else ''}", width)  # reads shapes only
            converted.append({key: jnp.asarray(as_numpy(p[key], key).astype(np.float32)) for key in ("W_x", "W_h", "b")})
        lstm = L.LSTM(H, return_sequences=pooled or not last)
        layers.append(L.Bidirectional(lstm) if bidirectional else lstm)
        params.append({"forward": converted[0], "backward": converted[1]} if bidirectional else converted[0])
        width = H * len(directions)
    if pooled:
        layers.append({"max": L.GlobalMaxPool, "mean": L.GlobalAveragePool, "maxmean": L.MaxMeanPool}[pooling]())
        params.append({})
        width = 2 * width if pooling == "maxmean" else width
    if not dense:
        raise LstmkitError("model_from_weights needs at least one Dense layer (the classifier's output)")
    for k, (W, b) in enumerate(dense):
        W, b = as_numpy(W, f"Dense {k} W").astype(np.float32), as_numpy(b, f"Dense {k} b").astype(np.float32)
        if dense_layout == "torch":
            W = W.T
        if W.ndim != 2 or W.shape[0] != width or b.shape != (W.shape[1],):
            raise LstmkitError(f"Dense layer {k}: expected W ({width}, units) and b (units,) in Keras layout, got {W.shape} and {b.shape}")
        last = k == len(dense) - 1
        act = activations[k] if activations is not None else ("relu" if not last else "sigmoid" if W.shape[1] == 1 else "softmax")
        layers.append(L.Dense(W.shape[1], act))
        params.append({"W": jnp.asarray(W), "b": jnp.asarray(b)})
        width = W.shape[1]
    model = Sequential([vectorizer, *layers], class_names=class_names)
    if model.class_names is None:
        model.class_names = [str(k) for k in range(max(width, 2))]
    model.params = params
    return model
