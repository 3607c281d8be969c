"""The explanation of one text: gate traces, a sentiment trajectory, token attributions, as one dict.

Shape legend: T tokens the model reads, P = T padded up to a multiple of CHUNK, D directions,
H hidden units, K outputs (1 for a binary sigmoid model), N rows of a batch.

`explain(model, text)` returns one JSON-able dict with four things, all computed by one jitted
function per padded length P (a text of T tokens is right-padded with id 0, which the Embedding
masks, so a masked step changes nothing):

1. The traced forward pass: the model's own forward (`Architecture.apply(..., trace=True)`), the
   code training and predict run, down to the C++ kernel or the JAX scan, which hands back what it
   keeps of every step for its backward: the gates i, f, g, o and the states c and h. So the
   probability is the model's own (a test checks the logits equal `apply`'s bit for bit, and the
   probability `model.predict`'s). Gates come per LSTM layer, per direction, per token in *text order*:
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

4. Memory through time: how far back the decision reaches. With z the target class's logit (the
   one logit of a binary model, the predicted class's of a softmax model), per token t read:
   - gradient_norm: ||dz/dx_t||, the gradient with respect to the token's embedded input x_t
     (the Embedding's output, with its bigram vector if any: what the first LSTM reads), through
     the model's own forward and training's hand-written backward (`trace.input_gradients`);
   - gradient_x_input: dz/dx_t . x_t, signed: > 0 where the word's vector pushes z up;
   - cell_gradient_norm, per direction of the first LSTM layer: ||dz/dc_t||, with respect to the
     cell right after token t (through h_t and every later step), from a plain JAX scan of the
     cell on the same weights (`trace.cell_gradients`): how much the decision leans on the
     memory at t;
   - reach: the earliest token t whose gradient_norm is at least 10% (`memory.REACH_THRESHOLD`)
     of the largest; tokens_back = n_used - 1 - t, its distance from the last token read (0: the
     last token itself); peak, the token of the largest. None for an empty text or an all-zero gradient.
   One more forward and backward pass each, O(T) (`lstmkit.explain.memory` builds this entry).

The target class is class 1 for a binary model (p is the sigmoid output) and the predicted class
for a softmax model. A multi-label model (K sigmoids) is explained for its likeliest label, whose
log-odds is its own logit; the explanation also lists the label set (`labels`, at the model's
thresholds).

Texts longer than the model's sequence length L are truncated exactly as in training and predict:
the model reads the first L tokens. Every token is still listed (with `n_used` and `truncated`), so
the page can grey out the unread ones. An empty text (or one with only punctuation) is read as all
padding: the probability is then the model's answer to nothing, and the trajectory is empty.

Cost: the traced pass is O(T); the trajectory and the occlusion run P rows of P steps, O(T^2)
token-steps each, in one compiled program. See docs/lstm.md for timings.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from lstmkit.core import fused
from lstmkit.data.text import OOV_ID, strip_html_breaks
from lstmkit.errors import LstmkitError
from lstmkit.explain.members import ensemble_arrays, ensemble_note
from lstmkit.explain.memory import memory_method, memory_summary, memory_view
from lstmkit.explain.page import Explanation
from lstmkit.explain.trace import (
    CHUNK,
    GATES,
    STATES,
    direction_names,
    is_causal,
    recurrent_indices,
)
from lstmkit.nn import layers as L
from lstmkit.nn.architecture import Architecture


def _words(vectorizer, text, tokens):
    """The original words behind the tokens, when they can be paired one to one; else the tokens.

    With whitespace splitting and no ngrams, each whitespace-separated piece of the text becomes
    one token or none (a piece of punctuation only), so the pieces that give a token are the words.
    """
    if vectorizer.split != "whitespace" or vectorizer.ngrams is not None:
        return list(tokens)
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


def log_odds(logits, target, multi_label=False):
    """log(p / (1 - p)) of the target class from logits (..., K), without forming p (no saturation);
    multi_label: each class its own sigmoid, so the log-odds is the target's logit."""
    z = np.asarray(logits, np.float64)
    if multi_label:
        return z[..., target]
    if z.shape[-1] == 1:
        return z[..., 0] if target == 1 else -z[..., 0]
    others = np.delete(z, target, axis=-1)
    m = others.max(-1, keepdims=True)
    return z[..., target] - (m[..., 0] + np.log(np.exp(others - m).sum(-1)))


def _round(a, digits=4):
    return np.round(np.asarray(a, np.float64), digits).tolist()


def _inference_view(model):
    """(architecture, every member's params) of the layers explain runs: the model's, without a
    leading WordDropout (the identity at inference), so the Embedding is layer 0; the same weights.

    The architecture holds the layers only (no loss, no optimizer): it is a value, so every model
    with these layers reuses the compiled explain code, and nothing is kept on the model.
    """
    skip = 1 if model.layers and isinstance(model.layers[0], L.WordDropout) else 0
    return Architecture(model.layers[skip:]), [params[skip:] for params in model.members]


def _label_set(model, arch, names, probabilities) -> dict:
    """A multi-label model's set at its thresholds (the explanation is of the likeliest label)."""
    if not arch.multi_label:
        return {}
    return {"multi_label": True, "labels": [n for n, p, t in zip(names, probabilities, model.thresholds) if p >= t]}


def explain(model, text, label=None):
    """Explain one prediction of a text classifier; returns a JSON-able dict (an `Explanation`,
    which Jupyter draws as the page).

    Args:
        model: a `Sequential` with a TextVectorizer and weights (e.g. `load_model(dir)`),
            whose first layer is an Embedding (mask_zero=True, so padding is masked).
        text: the text to explain.
        label: the class to explain (a model with K > 1 outputs: softmax or multi-label); None:
            the likeliest.

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
            memory: {"gradient_norm", "gradient_x_input" (n_used), "cell_layer" (the first LSTM
                layer's index), "cell_gradient_norm": [{"name", "values" (n_used)}] per direction,
                "reach": {"threshold", "earliest", "word", "tokens_back", "peak"} or None};
            methods: how the trajectory and the attribution were computed; notes: plain-language
            remarks for the page (truncation, empty text, unknown words).

    >>> e = explain(load_model("runs/seed"), "A great film.")  # doctest: +SKIP
    >>> e["label"], len(e["trajectory"]), sorted(e["layers"][0]["directions"][0])[:3]
    ('pos', 3, ['c', 'cell_norm', 'f'])
    """
    if model.params is None:
        raise LstmkitError("the model has no weights; load a trained model or fit one first")
    fused.available()  # build the LSTM kernel now, not inside the first trace
    arch, members = _inference_view(model)
    head = _check_explainable(model, arch, text)
    chosen = _chosen_class(model, label)
    v = model.vectorizer
    tokens, used, ids_all = _token_ids(model, text)
    n = len(used)
    words = _words(v, text, tokens)
    P = max(CHUNK, -(-n // CHUNK) * CHUNK)
    padded = np.zeros(P, np.int32)
    padded[:n] = used

    arrays = ensemble_arrays(arch, members, padded, -1 if chosen is None else chosen, head.activation)
    logits, traces, trajectory, occluded, memory = arrays
    names, target, probabilities, traj, attribution = _outputs(model, head, logits, trajectory, occluded, used, chosen)
    label_k = int(np.argmax(probabilities))
    return Explanation(
        {
            **_label_set(model, arch, names, probabilities),
            "text": text,
            "label": names[label_k],
            "probability": float(probabilities[label_k]),
            "probabilities": [float(p) for p in probabilities],
            "class_names": names,
            "target_class": names[target],
            "target_probability": float(probabilities[target]),
            "tokens": list(tokens),
            "words": words,
            "ids": [int(i) for i in ids_all],
            "known": [int(i) != OOV_ID for i in ids_all],
            "n_tokens": len(tokens),
            "n_used": n,
            "sequence_length": model.inference_length or v.output_sequence_length,
            "truncated": len(tokens) > n,
            "empty": not tokens,
            "vocab_size": v.vocab_size,
            "trajectory": _round(traj),
            "attribution": _round(attribution),
            "layers": _layer_traces(arch, traces, n),
            "memory": memory_view(arch, memory, words, n),
            "methods": _methods(is_causal(arch), names[target]),
            "notes": _notes(model, arch, tokens, used) + ensemble_note(len(members)),
        }
    )


def _check_explainable(model, arch, text):
    """Refuse what explain cannot read: no vectorizer, no Embedding first, no LSTM, no classifier
    head, or a text that is not a str. Returns the head (the last Dense layer)."""
    if model.vectorizer is None:
        raise LstmkitError("explain needs a model that reads text (a TextVectorizer first); this one takes token ids")
    if not arch.layers or not isinstance(arch.layers[0], L.Embedding):
        raise LstmkitError("explain needs an Embedding as the first layer after the TextVectorizer")
    if not recurrent_indices(arch):
        raise LstmkitError("the model has no LSTM layer to trace")
    if not isinstance(text, str):
        raise LstmkitError(f"explain takes one text (a str), got {type(text).__name__}")
    head = arch.layers[-1]
    if not isinstance(head, L.Dense) or (head.activation, head.units > 1) not in (
        ("sigmoid", False),
        ("softmax", True),
        ("sigmoid", True),  # multi-label
    ):
        raise LstmkitError(
            "explain needs a classifier: a last Dense layer with 1 unit and sigmoid, or K units and softmax or sigmoid"
        )
    return head


def _chosen_class(model, label):
    """The index of the class `label` names (None: None, the likeliest); an LstmkitError for a
    name the model lacks, or for a binary model, whose one logit is class 1's."""
    if label is None:
        return None
    names = list(model.class_names or [str(k) for k in range(model.n_outputs)])
    if model.n_outputs == 1:
        raise LstmkitError(
            "--label is for a model with more than two classes or with label sets; a binary model's explanation is always of its second class"
        )
    if str(label) not in names:
        raise LstmkitError(
            f"the model has no class {label!r} (its classes: {', '.join(names)}); pass one of them to --label"
        )
    return names.index(str(label))


def _token_ids(model, text):
    """(every token of the text, the ids the model reads (n,) as predict does, the ids of all tokens)."""
    v = model.vectorizer
    tokens = v.tokenize(text)  # every token of the text, before truncation
    used = np.asarray(model._ids([text], inference=True)[0], np.int32)  # the ids the model reads, as predict does
    n = len(used)
    index = {t: k for k, t in enumerate(v.vocabulary)}
    ids_all = [index.get(tok, OOV_ID) for tok in tokens]
    if ids_all[:n] != used.tolist():  # cannot happen with a consistent vectorizer; trust the model's ids
        ids_all = used.tolist() + ids_all[n:]
    return tokens, used, ids_all


def _outputs(model, head, logits, trajectory, occluded, used, chosen=None):
    """(class names, target class, probabilities (K or 2), trajectory (n,), attribution (n,)) from
    the explain pass's logits, with the model's own output activation, after dividing every logit
    by the model's temperature as predict does (`Sequential.temperature`; 1: unchanged)."""
    n = len(used)
    scale = 1.0 / model.temperature
    logits, trajectory, occluded = (np.asarray(a, np.float64) * scale for a in (logits, trajectory, occluded))
    activate = L.ACTIVATIONS[head.activation]  # the model's own output activation, as predict applies it
    proba = np.asarray(activate(jnp.asarray(logits)), np.float64)
    K = proba.shape[-1]
    names = list(model.class_names) if model.class_names else [str(k) for k in range(max(K, 2))]
    if K == 1:  # binary: p is the probability of class 1, and its log-odds is the logit itself
        target, probabilities = 1, [1.0 - float(proba[0]), float(proba[0])]
    else:  # softmax, or multi-label's K sigmoids: the likeliest class, or the one chosen
        target, probabilities = int(np.argmax(proba)) if chosen is None else chosen, proba.tolist()
    traj = np.asarray(activate(jnp.asarray(trajectory[:n])), np.float64)[:, min(target, K - 1)]
    multi = model.architecture.multi_label
    attribution = log_odds(logits, target, multi) - log_odds(np.asarray(occluded)[:n], target, multi)
    attribution[used == OOV_ID] = 0.0  # replacing [UNK] by [UNK] changes nothing; exact zero
    return names, target, probabilities, traj, attribution


def _layer_traces(arch, traces, n):
    """Per LSTM layer: index, type, units, and per direction its gates, states and summaries (n steps)."""
    layer_out = []
    for k, trace in zip(recurrent_indices(arch), traces):
        layer = arch.layers[k]
        lstm = layer.layer if isinstance(layer, L.Bidirectional) else layer
        directions = []
        for d, name in enumerate(direction_names(layer)):
            entry = {"name": name}
            for key in GATES + STATES:
                entry[key] = _round(trace[key][d, :n])
            entry["mean_forget"] = _round(trace["f"][d, :n].mean(-1) if n else [])
            entry["cell_norm"] = _round(np.linalg.norm(trace["c"][d, :n], axis=-1) if n else [])
            directions.append(entry)
        layer_out.append({"index": k, "type": type(layer).__name__, "units": lstm.units, "directions": directions})
    return layer_out


def _notes(model, arch, tokens, used):
    """Plain-language remarks for the page: empty text, truncation, unknown words, unmasked padding."""
    v, n = model.vectorizer, len(used)
    L_seq = model.inference_length or v.output_sequence_length
    n_unknown = int(np.sum(used == OOV_ID))
    notes = []
    if not tokens:
        notes.append(
            "The text is empty after standardization (no words, or punctuation only). The model reads only "
            "padding, so its answer is the same for every empty text; there is no trajectory and no attribution."
        )
    if len(tokens) > n:
        notes.append(
            f"The text has {len(tokens):,} tokens but the model reads only the first {n:,} (its "
            f"{'inference' if model.inference_length else 'sequence'} length is {L_seq}), as in training and predict; the greyed tokens after that were not read and cannot matter."
        )
    if n and n_unknown == n:
        notes.append(
            f"None of the {n:,} tokens read is in the model's vocabulary of {v.vocab_size:,} ids: each is read as "
            "[UNK], so the prediction cannot depend on which words they are, and every attribution is 0."
        )
    elif n_unknown:
        notes.append(
            f"{n_unknown:,} of the {n:,} tokens read are outside the vocabulary ({v.vocab_size:,} ids) and are read as "
            "[UNK] (shown underlined dotted); their attribution is 0."
        )
    if not arch.layers[0].mask_zero:
        notes.append(
            "This model's Embedding does not mask padding (mask_zero=False): padded steps are read as tokens, "
            "so the numbers depend on padding, as they do in predict."
        )
    return notes


def _methods(causal, target_name):
    """How the trajectory, the attribution and the trace were computed, in words."""
    return {
        "trajectory": (
            "p_t = the model's probability for the prefix ids[:t+1]. The model is causal (forward LSTMs then Dense), "
            "so p_t is the Dense head applied to the last LSTM layer's state h_t from the traced pass."
            if causal
            else "p_t = the model's probability for the prefix ids[:t+1]: the model runs on every prefix, one padded batch "
            "(row t = tokens 0..t). A backward direction reads each prefix from token t back to the first token."
        ),
        "attribution": f"occlusion: a_t = log-odds of {target_name!r} for the text minus its log-odds with token t "
        f"replaced by [UNK], log-odds = log(p / (1 - p)) from the logits. Positive: the word pushed towards {target_name!r}.",
        "trace": "the model's own forward pass (the kernel or scan that training runs), which keeps every step's "
        "gates and states; gates in text order per direction.",
        "memory": memory_method(target_name),
    }


def summary(explanation, top=5):
    """A few lines of text: label, probability, the strongest words either way."""
    e = explanation
    lines = [f"label: {e['label']}  (probability {e['probability']:.4f})"]
    if e.get("multi_label"):
        lines = [
            f"labels: {', '.join(e['labels']) or 'none'}; explained: {e['target_class']} (probability {e['target_probability']:.4f})"
        ]
    if e["truncated"]:
        lines.append(
            f"read {e['n_used']:,} of {e['n_tokens']:,} tokens (the model's sequence length is {e['sequence_length']})"
        )
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
    if e.get("memory", {}).get("reach"):
        lines.append(memory_summary(e))
    for note in e["notes"]:
        lines.append(f"note: {note}")
    return "\n".join(lines)
