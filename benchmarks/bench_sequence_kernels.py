"""Sequence models on the CPU: tinydl (NumPy) against PyTorch, same weights, same threads, one process.

    python benchmarks/bench_sequence_kernels.py [--quick] [--threads N] [--trials N] [--only kernels|steps]

Rows of ``ratio  tinydl ms  torch ms`` (ratio = tinydl / torch, medians of interleaved trials; see harness.py):

1. kernels, forward + backward (issue 4, item 5c): ``scaled_dot_product_attention`` at batch 32, 4 heads,
   sequence 128, head dim 32, causal; ``lstm_cell`` at batch 32, input 128, hidden 256; and the fused LSTM
   recurrence of a whole layer (``lstm_sequence``, 100 steps) against ``torch.nn.LSTM``'s;
2. training steps (items 5a, 5b): forward, cross-entropy, backward and an Adam update of
   (a) a character LSTM: embedding 65 -> 128, one LSTM layer of 256, sequence 100, batch 32, Linear to 65;
   (b) a Transformer LM: embedding 65 -> 128 plus learned positions, 4 pre-norm encoder layers (4 heads,
       feed-forward 512, dropout 0.1, causal), final LayerNorm, Linear to 65; sequence 128, batch 32.
   Targets: ratio <= 1.5 for (a), <= 1.3 for (b).
"""
from __future__ import annotations

import argparse
from typing import Callable

from harness import HEADER, compare, set_threads, torch_or_none


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="few trials: a smoke run, not a measurement")
    parser.add_argument("--threads", type=int, help="threads for NumPy's BLAS and PyTorch (default: all cores)")
    parser.add_argument("--trials", type=int, help="timed trials per row (default: 15, or 2 with --quick)")
    parser.add_argument("--only", choices=("kernels", "steps"), help="run one part only")
    return parser.parse_args()


ARGS = parse_arguments()
THREADS = set_threads(ARGS.threads)  # before NumPy is imported: its BLAS reads the thread count once

import numpy as np  # noqa: E402

import tinydl  # noqa: E402
import tinydl.functional as F  # noqa: E402
from tinydl import nn, optim  # noqa: E402

VOCAB, BATCH = 65, 32
LSTM_EMBED, LSTM_HIDDEN, LSTM_STEPS = 128, 256, 100
D_MODEL, HEADS, LAYERS, FEEDFORWARD, CONTEXT = 128, 4, 4, 512, 128


# -------------------------------------------------------------------------------------------------- kernels
def _forward_backward(library, op: Callable, arrays: list[np.ndarray], grads: int) -> Callable[[], None]:
    """op(*inputs), then backward of (output * a fixed random upstream gradient); the first ``grads`` inputs
    require gradients."""
    inputs = [library.tensor(a, requires_grad=k < grads) for k, a in enumerate(arrays)]
    upstream = None

    def run() -> None:
        nonlocal upstream
        outputs = op(*inputs)
        outputs = outputs if isinstance(outputs, tuple) else (outputs,)
        if upstream is None:
            upstream = [library.tensor(np.random.default_rng(1).standard_normal(o.shape).astype(np.float32))
                        for o in outputs]
        sum((o * u).sum() for o, u in zip(outputs, upstream)).backward()
        for tensor in inputs:
            tensor.grad = None
    return run


def kernel_cases(torch, rng: np.random.Generator) -> list[tuple[str, Callable, Callable | None]]:
    def array(*shape: int, scale: float = 1.0) -> np.ndarray:
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    attention = [array(BATCH, HEADS, CONTEXT, D_MODEL // HEADS) for _ in range(3)]
    cell = [array(BATCH, LSTM_EMBED), array(BATCH, LSTM_HIDDEN), array(BATCH, LSTM_HIDDEN),
            array(4 * LSTM_HIDDEN, LSTM_EMBED, scale=0.06), array(4 * LSTM_HIDDEN, LSTM_HIDDEN, scale=0.06),
            array(4 * LSTM_HIDDEN, scale=0.06), array(4 * LSTM_HIDDEN, scale=0.06)]
    sequence = [array(LSTM_STEPS, BATCH, LSTM_EMBED), array(4 * LSTM_HIDDEN, LSTM_EMBED, scale=0.06),
                array(4 * LSTM_HIDDEN, LSTM_HIDDEN, scale=0.06), array(4 * LSTM_HIDDEN, scale=0.06)]
    zeros = np.zeros((BATCH, LSTM_HIDDEN), np.float32)

    def ours_sequence(x, w_ih, w_hh, b):
        gates = F.linear(x.reshape(-1, LSTM_EMBED), w_ih, b).reshape(LSTM_STEPS, BATCH, -1)
        return F.lstm_sequence(gates, (tinydl.tensor(zeros), tinydl.tensor(zeros)), w_hh)[0]

    cases = [
        (f"sdpa {BATCH}x{HEADS}x{CONTEXT}x{D_MODEL // HEADS} causal fwd+bwd",
         _forward_backward(tinydl, lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True),
                           attention, 3),
         None if torch is None else _forward_backward(
             torch, lambda q, k, v: torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True),
             attention, 3)),
        (f"lstm_cell {BATCH}x{LSTM_EMBED}->{LSTM_HIDDEN} fwd+bwd",
         _forward_backward(tinydl, lambda x, h, c, *w: F.lstm_cell(x, (h, c), *w), cell, 7),
         None if torch is None else _forward_backward(torch, lambda x, h, c, *w: torch.lstm_cell(x, (h, c), *w),
                                                      cell, 7)),
        (f"LSTM layer {LSTM_STEPS} steps fwd+bwd",
         _forward_backward(tinydl, ours_sequence, sequence, 4),
         None if torch is None else _forward_backward(torch, _torch_sequence(torch), sequence, 4)),
    ]
    return cases


def _torch_sequence(torch) -> Callable:
    """torch.nn.LSTM's own recurrence with given weights (both biases in b_ih, b_hh = 0)."""
    def run(x, w_ih, w_hh, b):
        zeros = torch.zeros(1, BATCH, LSTM_HIDDEN)
        return torch._VF.lstm(x, (zeros, zeros), [w_ih, w_hh, b, torch.zeros_like(b)], True, 1, 0.0, True,
                              False, False)[0]
    return run


# ---------------------------------------------------------------------------------------------------- models
class CharLSTM(nn.Module):
    """Embedding -> LSTM -> Linear: the character language model of item 5a."""

    def __init__(self):
        super().__init__()
        self.embedding = nn.Embedding(VOCAB, LSTM_EMBED)
        self.lstm = nn.LSTM(LSTM_EMBED, LSTM_HIDDEN, batch_first=True)
        self.head = nn.Linear(LSTM_HIDDEN, VOCAB)

    def forward(self, ids):
        output, _ = self.lstm(self.embedding(ids))
        return self.head(output)


class TransformerLM(nn.Module):
    """Token and learned position embeddings -> pre-norm causal encoder layers -> LayerNorm -> Linear (5b)."""

    def __init__(self, dropout: float = 0.1):
        super().__init__()
        self.embedding = nn.Embedding(VOCAB, D_MODEL)
        self.positions = nn.LearnedPositionalEncoding(CONTEXT, D_MODEL, batch_first=True)
        layer = nn.TransformerEncoderLayer(D_MODEL, HEADS, FEEDFORWARD, dropout, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, LAYERS, norm=nn.LayerNorm(D_MODEL))
        self.head = nn.Linear(D_MODEL, VOCAB)

    def forward(self, ids):
        return self.head(self.encoder(self.positions(self.embedding(ids)), is_causal=True))


def torch_peer(torch, model: nn.Module):
    """The same architecture in PyTorch, holding copies of ``model``'s weights."""
    tnn = torch.nn

    class PeerLSTM(tnn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = tnn.Embedding(VOCAB, LSTM_EMBED)
            self.lstm = tnn.LSTM(LSTM_EMBED, LSTM_HIDDEN, batch_first=True)
            self.head = tnn.Linear(LSTM_HIDDEN, VOCAB)

        def forward(self, ids):
            return self.head(self.lstm(self.embedding(ids))[0])

    class PeerTransformer(tnn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = tnn.Embedding(VOCAB, D_MODEL)
            self.positions = tnn.Module()
            self.positions.weight = tnn.Parameter(torch.zeros(CONTEXT, D_MODEL))
            layer = tnn.TransformerEncoderLayer(D_MODEL, HEADS, FEEDFORWARD, 0.1, batch_first=True,
                                                norm_first=True)
            self.encoder = tnn.TransformerEncoder(layer, LAYERS, norm=tnn.LayerNorm(D_MODEL),
                                                  enable_nested_tensor=False)
            self.head = tnn.Linear(D_MODEL, VOCAB)
            self.register_buffer("mask", tnn.Transformer.generate_square_subsequent_mask(CONTEXT), persistent=False)

        def forward(self, ids):
            x = self.embedding(ids) + self.positions.weight[:ids.shape[1]]
            return self.head(self.encoder(x, mask=self.mask, is_causal=True))

    peer = PeerLSTM() if isinstance(model, CharLSTM) else PeerTransformer()
    peer.load_state_dict({key: torch.from_numpy(value.numpy().copy()) for key, value in model.state_dict().items()},
                         strict=True)
    return peer


def training_steps(torch, model: nn.Module, length: int, rng: np.random.Generator
                   ) -> tuple[Callable, Callable | None]:
    """One Adam step of each library on the same batch of token ids, from the same initial weights."""
    ids = rng.integers(0, VOCAB, (BATCH, length + 1))
    inputs, targets = tinydl.tensor(ids[:, :-1]), tinydl.tensor(ids[:, 1:].reshape(-1))
    optimizer = optim.Adam(model.parameters(), lr=1e-3)

    def ours() -> None:
        loss = F.cross_entropy(model(inputs).reshape(-1, VOCAB), targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    if torch is None:
        return ours, None
    peer = torch_peer(torch, model)
    peer_optimizer = torch.optim.Adam(peer.parameters(), lr=1e-3)
    peer_inputs, peer_targets = torch.from_numpy(ids[:, :-1]), torch.from_numpy(ids[:, 1:].reshape(-1))

    def theirs() -> None:
        loss = torch.nn.functional.cross_entropy(peer(peer_inputs).reshape(-1, VOCAB), peer_targets)
        peer_optimizer.zero_grad()
        loss.backward()
        peer_optimizer.step()

    return ours, theirs


def main() -> None:
    torch = torch_or_none()
    trials = ARGS.trials or (2 if ARGS.quick else 15)
    warmup = 1 if ARGS.quick else 2
    rng = np.random.default_rng(0)
    tinydl.manual_seed(0)
    versions = f"numpy {np.__version__}" + ("" if torch is None else f", torch {torch.__version__}")
    print(f"sequence models, float32, {THREADS} thread(s), {trials} interleaved trials per row ({versions})\n")
    print(HEADER)
    if ARGS.only in (None, "kernels"):
        for name, ours, peer in kernel_cases(torch, rng):
            print(compare(name, ours, peer, trials=trials, warmup=warmup).row(), flush=True)
    if ARGS.only in (None, "steps"):
        targets = {}
        for name, model, length, target in (
                (f"(a) char LSTM step, seq {LSTM_STEPS}, batch {BATCH}", CharLSTM(), LSTM_STEPS, 1.5),
                (f"(b) Transformer LM step, seq {CONTEXT}, batch {BATCH}", TransformerLM(), CONTEXT, 1.3)):
            result = compare(name, *training_steps(torch, model, length, rng), trials=trials, warmup=warmup)
            print(result.row(), flush=True)
            targets[name] = (result.ratio, target)
        for name, (ratio, target) in targets.items():
            if ratio is not None:
                print(f"{name}: ratio {ratio:.2f} (target <= {target})")


if __name__ == "__main__":
    main()
