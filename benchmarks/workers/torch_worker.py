"""PyTorch peer: the protocol's model with nn.LSTM over packed sequences.

With the default options the seed's: Embedding(100, 64, padding_idx=0) -> LSTM(64, 64,
bidirectional) on the real tokens only (pack_padded_sequence with lengths from the padding) ->
h_n of both directions concatenated -> Linear(128, 64) + ReLU -> Linear(64, 1) ->
BCEWithLogitsLoss; Adam(lr=1e-3, eps=1e-7), which are Keras's Adam defaults. The options change
V, E, H, the direction, and add what the default preset has: hashed word-pair vectors added to
the word vectors, Dropout1d of whole embedding channels, max and mean over the real steps (the
packed output, padded back, masked by the lengths), Dropout around the hidden Linear,
clip_grad_norm_ and a moving average of the weights (swa_utils.AveragedModel with
get_ema_multi_avg_fn, updated every step). Protocol: see ../bench_train.py.

Shapes: B batch, T time steps, V vocabulary, E embedding, H hidden per direction, D directions.
"""

import os
import time

import numpy as np
import protocol

try:
    import torch
    from torch import nn
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
except ImportError as error:
    protocol.unavailable(f"torch is not importable ({error}); pip install torch==2.13.0")


class Classifier(nn.Module):
    def __init__(self, args):
        super().__init__()
        self.embedding = nn.Embedding(args.vocab, args.embed, padding_idx=0)
        self.pairs = nn.Embedding(args.word_pairs, args.embed) if args.word_pairs else None
        self.embedding_dropout = nn.Dropout1d(args.embedding_dropout)
        directions = 2 if args.direction == "bi" else 1
        self.lstm = nn.LSTM(args.embed, args.hidden, bidirectional=directions == 2, batch_first=True)
        self.pooling = args.pooling
        features = directions * args.hidden * (2 if self.pooling == "maxmean" else 1)
        self.dropout = nn.Dropout(args.dropout)
        self.dense = nn.Linear(features, args.dense)
        self.out = nn.Linear(args.dense, 1)

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        """(B, T) ids -> (B, T, E): word vectors (+ word-pair vectors), channels dropped in training."""
        x = self.embedding(ids)
        if self.pairs is not None:
            previous = nn.functional.pad(ids[:, :-1], (1, 0))
            x = x + self.pairs((previous * 10007 + ids) % self.pairs.num_embeddings)
        return self.embedding_dropout(x.transpose(1, 2)).transpose(1, 2)  # Dropout1d drops whole channels

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """ids (B, T) int64, right padded with 0 -> logits (B,)."""
        lengths = (ids != 0).sum(dim=1).clamp(min=1).cpu()  # an empty review still has 1 step
        packed = pack_padded_sequence(self.embed(ids), lengths, batch_first=True, enforce_sorted=False)
        output, (h_n, _) = self.lstm(packed)  # h_n (D, B, H): [forward, backward] final states
        if self.pooling == "maxmean":
            states, _ = pad_packed_sequence(output, batch_first=True)  # (B, T_max, D H), zeros past the end
            real = (torch.arange(states.shape[1])[None, :] < lengths[:, None])[..., None]
            largest = states.masked_fill(~real, float("-inf")).amax(dim=1)
            mean = states.sum(dim=1) / lengths[:, None].to(states.dtype)
            features = torch.cat([largest, mean], dim=1)
        else:
            features = torch.cat(list(h_n), dim=1)  # (B, D H); not output[:, -1] for a BiLSTM
        hidden = self.dropout(torch.relu(self.dense(self.dropout(features))))
        return self.out(hidden).squeeze(1)


def main() -> None:
    args = protocol.parse_args(__doc__.splitlines()[0])
    # --threads, else the machine's core count, as a user would set it. LSTMKIT_BENCH_TORCH_THREADS overrides it,
    # to diagnose a busy machine: OpenMP threads that wait for each other at every op slow
    # nn.LSTM down by an order of magnitude when other processes take the cores.
    threads = args.threads or int(os.environ.get("LSTMKIT_BENCH_TORCH_THREADS", protocol.core_count()))
    torch.set_num_threads(threads)
    torch.manual_seed(args.seed)

    x_np, y_np = protocol.load_data(args.data)
    x = torch.from_numpy(x_np.astype(np.int64))
    y = torch.from_numpy(y_np.astype(np.float32))

    model = Classifier(args)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.learning_rate, eps=1e-7)
    average = (
        AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(args.weight_average)) if args.weight_average else None
    )
    loss_fn = nn.BCEWithLogitsLoss()

    def train_step(ids: torch.Tensor, labels: torch.Tensor) -> float:
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(ids), labels)
        loss.backward()
        if args.clipnorm:
            nn.utils.clip_grad_norm_(model.parameters(), args.clipnorm)
        optimizer.step()
        if average is not None:
            average.update_parameters(model)
        return loss.item()

    b = args.batch_size
    starts = protocol.training_batch_starts(len(x), b, args.warmup + args.batches)
    times_ms, loss = [], float("nan")
    model.train()
    for start in starts:
        t0 = time.perf_counter()
        loss = train_step(x[start : start + b], y[start : start + b])
        times_ms.append((time.perf_counter() - t0) * 1e3)

    epoch_s = None
    if args.full_epoch:
        t0 = time.perf_counter()
        for start in range(0, len(x), b):
            loss = train_step(x[start : start + b], y[start : start + b])
        epoch_s = time.perf_counter() - t0

    reviews_per_s = None
    if args.predict:
        p = args.predict_batch_size
        n_predict = min(args.predict_batches * p, (len(x) // p) * p)
        model.eval()
        with torch.inference_mode():
            torch.sigmoid(model(x[:p]))  # warmup
            t0 = time.perf_counter()
            for start in range(0, n_predict, p):
                torch.sigmoid(model(x[start : start + p]))
            reviews_per_s = n_predict / (time.perf_counter() - t0)

    protocol.emit(
        "torch",
        args,
        versions={"torch": torch.__version__},
        warmup_ms=times_ms[: args.warmup],
        step_ms=times_ms[args.warmup :],
        n_reviews=len(x),
        epoch_s=epoch_s,
        predict_reviews_per_s=reviews_per_s,
        final_loss=loss,
        threads=threads,
        notes="eager nn.LSTM on packed sequences (oneDNN on CPU)",
        extra={"mkldnn_enabled": torch.backends.mkldnn.is_available()},
    )


if __name__ == "__main__":
    main()
