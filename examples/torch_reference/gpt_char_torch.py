"""The character GPT of examples/gpt_char.py, written in PyTorch: the same model, recipe, data windows and
schedule, to show that tinydl reaches the same validation loss after the same number of steps.

    python examples/torch_reference/gpt_char_torch.py --max-steps 500

The corpus, its vocabulary, the training windows (their order and random offsets, from the same seed), the
learning-rate schedule and the validation procedure come from the tinydl examples, so the only difference is the
engine. The initial weights are PyTorch's own (the same distributions as tinydl's, other draws). Ends with the same
line: ``validation loss: X.XXXX nats (Y.YYY bits/char)``.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path
from typing import Any, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tinydl examples whose recipe this follows

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from char_rnn import final_line, load_corpus, lr_factor  # noqa: E402
from gpt_char import Recipe  # noqa: E402
from tinydl.data.text import LanguageModelBatches  # noqa: E402


class GPT(nn.Module):
    def __init__(self, vocab_size: int, recipe: Recipe) -> None:
        super().__init__()
        self.token_embedding = nn.Embedding(vocab_size, recipe.d_model)
        self.position_embedding = nn.Embedding(recipe.context, recipe.d_model)
        self.blocks = nn.ModuleList([
            nn.TransformerEncoderLayer(recipe.d_model, recipe.num_heads, recipe.dim_feedforward, recipe.dropout,
                                       activation="gelu", batch_first=True, norm_first=True)
            for _ in range(recipe.num_layers)])
        self.norm = nn.LayerNorm(recipe.d_model)
        self.head = nn.Linear(recipe.d_model, vocab_size)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        length = ids.shape[1]
        x = self.token_embedding(ids) + self.position_embedding(torch.arange(length))
        mask = torch.triu(torch.full((length, length), float("-inf")), diagonal=1)
        for block in self.blocks:
            x = block(x, src_mask=mask)
        return self.head(self.norm(x))


def as_torch(window: Any) -> torch.Tensor:
    return torch.from_numpy(window.numpy())


def validation_loss(model: GPT, ids: np.ndarray, recipe: Recipe) -> float:
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for inputs, targets in LanguageModelBatches(ids, recipe.batch_size, recipe.context):
            logits = model(as_torch(inputs))
            total += F.cross_entropy(logits.reshape(-1, logits.shape[-1]), as_torch(targets).reshape(-1),
                                     reduction="sum").item()
            count += targets.size
    model.train()
    return total / count


def main(argv: Sequence[str] | None = None) -> float:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
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
    batches = LanguageModelBatches(corpus.train_ids, recipe.batch_size, recipe.context, random_offset=True,
                                   seed=args.seed)
    model = GPT(len(corpus.vocab), recipe)
    optimizer = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    warmup = min(recipe.warmup_steps, args.max_steps // 10)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, args.max_steps, warmup))
    print(f"PyTorch {torch.__version__}; {dataclasses.asdict(recipe)}; {args.max_steps} steps")
    step, start = 0, time.perf_counter()
    while step < args.max_steps:
        for inputs, targets in batches:
            logits = model(as_torch(inputs))
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), as_torch(targets).reshape(-1))
            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), recipe.clip)
            optimizer.step()
            scheduler.step()
            step += 1
            if step % 100 == 0:
                print(f"step {step}/{args.max_steps} loss {loss.item():.4f} "
                      f"{(time.perf_counter() - start) / step * 1000:.0f} ms/step", flush=True)
            if step == args.max_steps:
                break
    nats = validation_loss(model, corpus.validation_ids, recipe)
    print(final_line(nats))
    return nats


if __name__ == "__main__":
    main()
