"""A text classifier as a standard ONNX graph, node by node (onnx.helper; the `export` extra).

Shape legend: B batch, T time, E embedding, H hidden units, D directions, F features, K outputs.

The graph takes right-padded token ids (B, T) int64, 0 for padding, and gives probabilities:

    mask    = ids != 0                    lengths = sum_t mask        (B,)
    x       = E[ids] (+ E_pair[hash(ids_{t-1}, ids_t) mod N])         Gather, in-graph hash
    Y, Y_h  = LSTM(x, sequence_lens=lengths)                          ONNX's LSTM, both directions
    v       = Y_h  or  max / mean of Y over the real steps            masks, as lstmkit's pooling
    p       = sigmoid / softmax(Dense(... relu(Dense(v))))            (then the temperature, if any)

ONNX's LSTM stacks its gates in the order i, o, f, c and keeps two biases (input and recurrent);
lstmkit's are i, f, g, o with one bias, so `onnx_lstm_weights` reorders and transposes. With
`sequence_lens` a reverse direction starts at each sequence's last real token and padded steps
give zeros: lstmkit's masking (a masked step changes no state) on right-padded ids. An empty
text has length 0 and keeps zero states, as in lstmkit (onnxruntime 1.32 runs zero lengths; the
tests check it, since the ONNX spec leaves them to the runtime).

    >>> import numpy as np
    >>> g = GraphBuilder()
    >>> x = g.embedding(np.zeros((5, 3), np.float32))
    >>> model = g.finish(g.dense(g.pool(x, "mean"), np.ones((3, 1), np.float32), np.zeros(1, np.float32), "sigmoid"))
    >>> [i.name for i in model.graph.input], [o.name for o in model.graph.output]
    (['ids'], ['probabilities'])
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
INPUT, OUTPUT = "ids", "probabilities"
PAIR_MULTIPLIERS = (2654435761, 40503)  # lstmkit.nn.layers.bigram_ids: (w_{t-1} a + w_t b) mod 2^32 mod N
EPS = 1e-7  # lstmkit.tasks.calibration's clip before the logits of a temperature


def onnx_lstm_weights(params):
    """One direction's lstmkit weights as ONNX's: W (4H, E), R (4H, H), B (8H,), gates i, o, f, c.

    lstmkit: W_x (E, 4H), W_h (H, 4H), b (4H,), gates i, f, g, o side by side (c is ONNX's g).

    >>> H = 1; p = {"W_x": np.array([[1., 2., 3., 4.]]), "W_h": np.zeros((1, 4)), "b": np.arange(4.)}
    >>> W, R, B = onnx_lstm_weights(p); W[:, 0].tolist(), B.tolist()
    ([1.0, 4.0, 2.0, 3.0], [0.0, 3.0, 1.0, 2.0, 0.0, 0.0, 0.0, 0.0])
    """
    W_x, W_h, b = (np.asarray(params[k], np.float32) for k in ("W_x", "W_h", "b"))
    i, f, g, o = np.split(np.arange(W_h.shape[1]), 4)
    order = np.concatenate([i, o, f, g])
    return W_x[:, order].T.copy(), W_h[:, order].T.copy(), np.concatenate([b[order], np.zeros_like(b)])


def _f32(a):
    return np.asarray(a, np.float32)


class GraphBuilder:
    """Nodes and weights of one graph, added layer by layer; each method returns its output's name.

    Sequences run time-major inside the graph, (T, B, F), the layout ONNX's LSTM reads; the ids'
    mask and lengths are made once, on first use.
    """

    def __init__(self):
        self.nodes, self.weights, self._count = [], [], 0
        self._mask = None

    # -- plumbing -----------------------------------------------------------------------------
    def _name(self, what):
        self._count += 1
        return f"{what}_{self._count}"

    def _op(self, op, inputs, what=None, **attributes):
        out = self._name(what or op.lower())
        self.nodes.append(helper.make_node(op, list(inputs), [out], name=out, **attributes))
        return out

    def const(self, value, what="const"):
        """A weight or constant tensor in the graph, in the value's own dtype."""
        name = self._name(what)
        self.weights.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def _ints(self, *values):
        return self.const(np.array(values, np.int64), "axes")

    def masks(self):
        """(mask (T, B, 1) float, any real step (B, 1) bool, lengths (B,) int32) of the ids."""
        if self._mask is None:
            real = self._op("Not", [self._op("Equal", [INPUT, self.const(np.int64(0), "pad_id")])], "real")
            counts = self._op("ReduceSum", [self._op("Cast", [real], to=TensorProto.INT32), self._ints(1)], keepdims=0)
            real_tb = self._op("Unsqueeze", [self._op("Transpose", [real], perm=[1, 0]), self._ints(2)])
            any_real = self._op("Unsqueeze", [self._op("Greater", [counts, self.const(np.int32(0))]), self._ints(1)])
            self._mask = (self._op("Cast", [real_tb], "mask", to=TensorProto.FLOAT), any_real, counts)
        return self._mask

    # -- layers -------------------------------------------------------------------------------
    def embedding(self, table, pair_table=None):
        """Gather rows of the (V, E) table for the ids, plus the hashed word-pair rows when
        `pair_table` (N, E) is given (lstmkit's `bigram_buckets`); returns (T, B, E).

        The pair of position t is (w_{t-1}, w_t) with w_{-1} = 0, hashed in int64 as lstmkit hashes in
        uint32: (w_{t-1} * 2654435761 + w_t * 40503) mod 2^32 mod N, exact for ids below 2^30.
        """
        ids_tb = self._op("Transpose", [INPUT], perm=[1, 0])
        x = self._op("Gather", [self.const(_f32(table), "embedding"), ids_tb], axis=0)
        if pair_table is None:
            return x
        first = self._op("Mul", [self._op("Slice", [ids_tb, self._ints(0), self._ints(1)]), self.const(np.int64(0))])
        before = self._op("Slice", [ids_tb, self._ints(0), self._ints(-1)])
        prev = self._op("Concat", [first, before], axis=0)  # w_{t-1}, 0 before the first
        a, b = (self.const(np.int64(m)) for m in PAIR_MULTIPLIERS)
        mixed = self._op("Add", [self._op("Mul", [prev, a]), self._op("Mul", [ids_tb, b])])
        wrapped = self._op("Mod", [mixed, self.const(np.int64(2**32))])  # uint32 arithmetic
        pairs = self._op("Mod", [wrapped, self.const(np.int64(len(pair_table)))], "pair_ids")
        return self._op("Add", [x, self._op("Gather", [self.const(_f32(pair_table), "pair_embedding"), pairs], axis=0)])

    def lstm(self, x, directions, *, reverse=False, sequences=False, merge_mode="concat"):
        """ONNX's LSTM over (T, B, F) with each row's length: one or two directions' lstmkit weights.

        Two directions are forward and reverse (a Bidirectional), one reads forward, or in
        reverse with `reverse`. Returns every step's output (T, B, D H) with `sequences`, else the
        final states (B, D H); two directions merged by `merge_mode` (concat, sum, mul, ave).
        """
        W, R, B = (np.stack(w) for w in zip(*(onnx_lstm_weights(p) for p in directions)))
        D, H = len(directions), R.shape[-1]
        direction = "bidirectional" if D == 2 else "reverse" if reverse else "forward"
        _, _, lengths = self.masks()
        inputs = [x, self.const(W, "W"), self.const(R, "R"), self.const(B, "B"), lengths]
        y, y_h = self._name("lstm_y"), self._name("lstm_h")
        self.nodes.append(helper.make_node("LSTM", inputs, [y, y_h], name=y, hidden_size=int(H), direction=direction))
        if sequences:  # Y (T, D, B, H) -> (T, B, D, H)
            return self._merge(self._op("Transpose", [y], perm=[0, 2, 1, 3]), D, merge_mode, [0, 0, -1])
        return self._merge(self._op("Transpose", [y_h], perm=[1, 0, 2]), D, merge_mode, [0, -1])  # (B, D, H)

    def _merge(self, x, D, mode, flat_shape):
        """(..., D, H) -> (..., D H) for concat (forward first) or one direction, by a Reshape to
        `flat_shape` (0 keeps an axis); (..., H) for sum, ave, mul."""
        if D == 1 or mode == "concat":
            return self._op("Reshape", [x, self.const(np.array(flat_shape, np.int64), "shape")])
        if mode == "sum":
            return self._op("ReduceSum", [x, self._ints(-2)], keepdims=0)
        return self._op({"ave": "ReduceMean", "mul": "ReduceProd"}[mode], [x], axes=[-2], keepdims=0)

    def pool(self, x, kind):
        """(T, B, F) -> (B, F) over the real steps: "max", "mean", or "maxmean" ((B, 2F), max first).

        A row with no real step pools to zeros, as lstmkit's pooling does.
        """
        mask, any_real, _ = self.masks()
        time = self._ints(0)
        parts = []
        if kind in ("max", "maxmean"):
            real = self._op("Cast", [mask], to=TensorProto.BOOL)
            masked = self._op("Where", [real, x, self.const(np.float32(-np.inf))])
            top = self._op("ReduceMax", [masked], axes=[0], keepdims=0)
            parts.append(self._op("Where", [any_real, top, self.const(np.float32(0.0))], "max_pool"))
        if kind in ("mean", "maxmean"):
            total = self._op("ReduceSum", [self._op("Mul", [x, mask]), time], keepdims=0)
            count = self._op("Max", [self._op("ReduceSum", [mask, time], keepdims=0), self.const(np.float32(1.0))])
            parts.append(self._op("Div", [total, count], "mean_pool"))
        return parts[0] if len(parts) == 1 else self._op("Concat", parts, "maxmean_pool", axis=-1)

    def dense(self, x, W, b, activation=None):
        """x W + b, then the activation (None, linear, relu, tanh, sigmoid, softmax): (B, F) -> (B, U)."""
        z = self._op("Gemm", [x, self.const(_f32(W), "dense_W"), self.const(_f32(b), "dense_b")])
        op = {"relu": "Relu", "tanh": "Tanh", "sigmoid": "Sigmoid"}.get(activation)
        if activation == "softmax":
            return self._op("Softmax", [z], axis=-1)
        return self._op(op, [z]) if op else z

    def mean(self, outputs):
        """The elementwise mean of several outputs of one shape (an ensemble's probabilities)."""
        return outputs[0] if len(outputs) == 1 else self._op("Mean", list(outputs))

    def calibrated(self, p, temperature, binary):
        """lstmkit.tasks.calibration.with_temperature in the graph, in float64 as there: p clipped to
        [1e-7, 1 - 1e-7], z = log(p / (1 - p)) (one output) or log p (K), p_T = sigmoid or
        softmax(z / T); the result as float32."""
        p = self._op("Cast", [p], to=TensorProto.DOUBLE)
        p = self._op("Clip", [p, self.const(np.float64(EPS)), self.const(np.float64(1.0 - EPS))])
        T = self.const(np.float64(temperature), "temperature")
        if binary:
            odds = self._op("Div", [p, self._op("Sub", [self.const(np.float64(1.0)), p])])
            out = self._op("Sigmoid", [self._op("Div", [self._op("Log", [odds]), T])])
        else:
            out = self._op("Softmax", [self._op("Div", [self._op("Log", [p]), T])], axis=-1)
        return self._op("Cast", [out], to=TensorProto.FLOAT)

    def finish(self, output, *, n_outputs=None, rank=2, doc=""):
        """The checked model (onnx.checker, full shape inference): input `ids`, output `probabilities`
        (B, n_outputs); `rank` 3 for a sequence (T, B, F), which the tests look at."""
        self.nodes.append(helper.make_node("Identity", [output], [OUTPUT], name=OUTPUT))
        graph = helper.make_graph(
            self.nodes,
            "lstmkit_classifier",
            [helper.make_tensor_value_info(INPUT, TensorProto.INT64, ["batch", "time"])],
            [
                helper.make_tensor_value_info(
                    OUTPUT, TensorProto.FLOAT, ["batch", n_outputs] if rank == 2 else [None] * rank
                )
            ],
            self.weights,
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="lstmkit")
        model.doc_string = doc
        onnx.checker.check_model(model, full_check=True)
        return model
