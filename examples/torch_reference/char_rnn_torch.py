"""The character language model of examples/char_rnn.py, written in PyTorch: the same model, recipe, data windows
and schedule, to show that tinydl reaches the same validation loss after the same number of steps.

    python examples/torch_reference/char_rnn_torch.py --cell lstm --max-steps 1000

The corpus, its vocabulary, the training windows (their order and random offsets, from the same seed) and the
validation procedure come from the tinydl example itself, so the only difference is the engine. The initial
weights are PyTorch's own (the same distributions as tinydl's, other draws). Ends with the same line:
``validation loss: X.XXXX nats (Y.YYY bits/char)``.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path
from typing import Any, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tinydl example whose recipe this follows

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from char_rnn import RECURRENT_LAYERS, Recipe, final_line, load_corpus, lr_factor  # noqa: E402
from tinydl.data.text import LanguageModelBatches  # noqa: E402


class CharRNN(nn.Module):
    def __init__(self, vocab_size: int, cell: str, recipe: Recipe) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, recipe.embedding_dim)
        layer = getattr(nn, RECURRENT_LAYERS[cell])
        self.rnn = layer(recipe.embedding_dim, recipe.hidden_size, num_layers=recipe.num_layers,
                         dropout=recipe.dropout if recipe.num_layers > 1 else 0.0, batch_first=True)
        self.head = nn.Linear(recipe.hidden_size, vocab_size)

    def forward(self, ids: torch.Tensor, state: Any = None) -> tuple[torch.Tensor, Any]:
        output, state = self.rnn(self.embedding(ids), state)
        return self.head(output), state


def detach(state: Any) -> Any:
    return tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()


def as_torch(window: Any) -> torch.Tensor:
    return torch.from_numpy(window.numpy())


def validation_loss(model: CharRNN, ids: np.ndarray, recipe: Recipe) -> float:
    model.eval()
    total, count, state = 0.0, 0, None
    with torch.no_grad():
        for inputs, targets in LanguageModelBatches(ids, recipe.batch_size, recipe.seq_len):
            logits, state = model(as_torch(inputs), state)
            total += F.cross_entropy(logits.reshape(-1, logits.shape[-1]), as_torch(targets).reshape(-1),
                                     reduction="sum").item()
            count += targets.size
    model.train()
    return total / count


def main(argv: Sequence[str] | None = None) -> float:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cell", choices=sorted(RECURRENT_LAYERS), default="lstm")
    parser.add_argument("--text", metavar="FILE", help="UTF-8 text (default: the Shakespeare plays)")
    parser.add_argument("--max-steps", type=int, required=True, help="training steps")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, help="PyTorch threads (default: PyTorch's choice)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    recipe = Recipe()
    corpus = load_corpus(args.text)
    torch.manual_seed(args.seed)
    batches = LanguageModelBatches(corpus.train_ids, recipe.batch_size, recipe.seq_len, random_offset=True,
                                   seed=args.seed)
    model = CharRNN(len(corpus.vocab), args.cell, recipe)
    optimizer = torch.optim.Adam(model.parameters(), lr=recipe.lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, args.max_steps))
    print(f"PyTorch {torch.__version__}, {args.cell}; {dataclasses.asdict(recipe)}; {args.max_steps} steps")
    step, state, start = 0, None, time.perf_counter()
    while step < args.max_steps:
        for inputs, targets in batches:
            logits, state = model(as_torch(inputs), state)
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), as_torch(targets).reshape(-1))
            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), recipe.clip)
            optimizer.step()
            scheduler.step()
            state = detach(state)
            step += 1
            if step % 100 == 0:
                print(f"step {step}/{args.max_steps} loss {loss.item():.4f} "
                      f"{(time.perf_counter() - start) / step * 1000:.0f} ms/step", flush=True)
            if step == args.max_steps:
                break
        if batches.windows_done == 0:
            state = None
    nats = validation_loss(model, corpus.validation_ids, recipe)
    print(final_line(nats))
    return nats


if __name__ == "__main__":
    main()
