"""PyTorch peer: the seed's BiLSTM classifier with nn.LSTM over packed sequences.

Embedding(100, 64, padding_idx=0) -> LSTM(64, 64, bidirectional) on the real tokens only
(pack_padded_sequence with lengths from the padding) -> h_n of both directions concatenated
-> Linear(128, 64) + ReLU -> Linear(64, 1) -> BCEWithLogitsLoss; Adam(lr=1e-3, eps=1e-7), which
are Keras's Adam defaults. Protocol: see ../bench_train.py.

Shapes: B batch, T = 200 time steps, E = 64 embedding, H = 64 hidden per direction.
"""

import os
import time

import numpy as np
import protocol

try:
    import torch
    from torch import nn
    from torch.nn.utils.rnn import pack_padded_sequence
except ImportError as error:
    protocol.unavailable(f"torch is not importable ({error}); pip install torch==2.13.0")


class BiLSTMClassifier(nn.Module):
    def __init__(self, vocab_size: int = 100, embed_dim: int = 64, hidden: int = 64):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=0)
        self.lstm = nn.LSTM(embed_dim, hidden, bidirectional=True, batch_first=True)
        self.dense = nn.Linear(2 * hidden, 64)
        self.out = nn.Linear(64, 1)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """ids (B, T) int64, right padded with 0 -> logits (B,)."""
        lengths = (ids != 0).sum(dim=1).clamp(min=1).cpu()  # an empty review still has 1 step
        embedded = self.embedding(ids)  # (B, T, E)
        packed = pack_padded_sequence(embedded, lengths, batch_first=True, enforce_sorted=False)
        _, (h_n, _) = self.lstm(packed)  # h_n (2, B, H): [forward, backward] final states
        features = torch.cat([h_n[0], h_n[1]], dim=1)  # (B, 2H); not output[:, -1] for a BiLSTM
        return self.out(torch.relu(self.dense(features))).squeeze(1)


def main() -> None:
    args = protocol.parse_args(__doc__.splitlines()[0])
    # The machine's core count, as a user would set it. LSTMKIT_BENCH_TORCH_THREADS overrides it,
    # to diagnose a busy machine: OpenMP threads that wait for each other at every op slow
    # nn.LSTM down by an order of magnitude when other processes take the cores.
    threads = int(os.environ.get("LSTMKIT_BENCH_TORCH_THREADS", protocol.core_count()))
    torch.set_num_threads(threads)
    torch.manual_seed(args.seed)

    x_np, y_np = protocol.load_data(args.data)
    x = torch.from_numpy(x_np.astype(np.int64))
    y = torch.from_numpy(y_np.astype(np.float32))

    model = BiLSTMClassifier()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-7)
    loss_fn = nn.BCEWithLogitsLoss()

    def train_step(ids: torch.Tensor, labels: torch.Tensor) -> float:
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(ids), labels)
        loss.backward()
        optimizer.step()
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
