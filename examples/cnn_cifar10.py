"""Train the article's convolutional network on CIFAR-10 with tinydl.

    python examples/cnn_cifar10.py                       # the best recipe found (default), 20 epochs
    python examples/cnn_cifar10.py --recipe article      # the article's recipe: Adam 1e-3, batch 64, 10 epochs
    python examples/cnn_cifar10.py --resume              # continue from the last complete epoch

The model, layer for layer:

    conv 3->64 3x3 pad 1, ReLU, maxpool 2      (3, 32, 32) -> (64, 16, 16)
    conv 64->128 3x3 pad 1, ReLU, maxpool 2    -> (128, 8, 8)
    flatten, Linear 8192->512, ReLU            -> (512,)
    Linear 512->10                             -> class scores (logits)

Recipes (both train exactly this model):

* ``article``: Adam at a constant learning rate of 1e-3, batches of 64, 10 epochs, pixels scaled to [0, 1] and
  nothing else, plain cross-entropy.
* ``best``: random crops (zero padding 4) and horizontal flips, per-channel normalisation, a one-cycle learning
  rate schedule peaking at 3e-3, label smoothing 0.1, 20 epochs.

The dataset is read from ``--data-dir`` in the official binary (or python) layout of CIFAR-10. Every epoch ends
with the test accuracy and a checkpoint (``--checkpoint-dir/last.tdl``); the last line is
``test accuracy: NN.NN%``.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parent))  # _common, when this file is imported by a test

import tinydl  # noqa: E402
import tinydl.functional as F  # noqa: E402
from tinydl import nn, optim  # noqa: E402
from tinydl.data import CIFAR10, DataLoader, Subset, transforms as T  # noqa: E402

from _common import (Progress, add_training_arguments, check_same_config, data_or_exit,  # noqa: E402
                     format_duration, load_checkpoint, plot_curves, positive_int, save_checkpoint)

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)  # per-channel mean and standard deviation of the training images
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
TEST_BATCH_SIZE = 1000


class Net(nn.Module):
    """The article's CNN. State dict keys: conv1.*, conv2.*, fc1.*, fc2.* (weight and bias each)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, kernel_size=3, padding=1)
        self.conv2 = nn.Conv2d(64, 128, kernel_size=3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.fc1 = nn.Linear(128 * 8 * 8, 512)
        self.fc2 = nn.Linear(512, 10)

    def forward(self, images: tinydl.Tensor) -> tinydl.Tensor:
        x = self.pool(F.relu(self.conv1(images)))
        x = self.pool(F.relu(self.conv2(x)))
        x = F.relu(self.fc1(x.flatten(1)))
        return self.fc2(x)


@dataclasses.dataclass(frozen=True)
class Recipe:
    """How the model is trained. ``lr`` is Adam's constant rate, or the peak of the one-cycle schedule."""

    epochs: int
    batch_size: int
    lr: float
    augment: bool  # random crop (pad 4) + horizontal flip
    normalize: bool  # per-channel standardisation after scaling to [0, 1]
    one_cycle: bool
    label_smoothing: float


RECIPES = {
    "article": Recipe(epochs=10, batch_size=64, lr=1e-3, augment=False, normalize=False, one_cycle=False,
                      label_smoothing=0.0),
    "best": Recipe(epochs=20, batch_size=64, lr=3e-3, augment=True, normalize=True, one_cycle=True,
                   label_smoothing=0.1),
}


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", choices=sorted(RECIPES), default="best", help="training recipe (default: best)")
    parser.add_argument("--data-dir", default="data", help="directory holding cifar-10-batches-bin (default: data)")
    parser.add_argument("--download", action="store_true", help="fetch CIFAR-10 into --data-dir when missing")
    parser.add_argument("--augment", action=argparse.BooleanOptionalAction,
                        help="random crop + horizontal flip (default: the recipe's)")
    parser.add_argument("--limit-train", type=positive_int, metavar="N", help="train on the first N images only")
    parser.add_argument("--limit-test", type=positive_int, metavar="N", help="test on the first N images only")
    add_training_arguments(parser, checkpoint_dir="checkpoints/cnn_cifar10")
    return parser.parse_args(argv)


def chosen_recipe(args: argparse.Namespace) -> Recipe:
    """The named recipe, with the hyperparameters given on the command line in place of its own."""
    overrides = {"epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr, "augment": args.augment}
    return dataclasses.replace(RECIPES[args.recipe], **{k: v for k, v in overrides.items() if v is not None})


def load_dataset(args: argparse.Namespace, train: bool) -> CIFAR10 | Subset:
    limit = args.limit_train if train else args.limit_test
    with data_or_exit("cnn_cifar10", "or add --download to fetch the official archive into --data-dir"):
        dataset = CIFAR10(args.data_dir, train=train, download=args.download)
    return Subset(dataset, range(min(limit, len(dataset)))) if limit else dataset


def make_loaders(args: argparse.Namespace, recipe: Recipe) -> tuple[DataLoader, DataLoader]:
    scale = [T.ToFloat()] + ([T.Normalize(CIFAR10_MEAN, CIFAR10_STD)] if recipe.normalize else [])
    augment = [T.RandomCrop(32, padding=4), T.RandomHorizontalFlip()] if recipe.augment else []
    train = DataLoader(load_dataset(args, train=True), batch_size=recipe.batch_size, shuffle=True, seed=args.seed,
                       transform=T.Compose(augment + scale), device=args.device)
    test = DataLoader(load_dataset(args, train=False), batch_size=TEST_BATCH_SIZE, transform=T.Compose(scale),
                      device=args.device)
    return train, test


def train_one_epoch(model: Net, loader: DataLoader, optimizer: optim.Optimizer, scheduler: Any, recipe: Recipe,
                    prefix: str) -> tuple[float, float, float]:
    """One pass over ``loader``: mean loss, accuracy (%) and seconds. Sums stay on the device until shown."""
    model.train()
    progress = Progress(prefix, len(loader), unit="images")
    loss_sum = correct = seen = 0
    for step, (images, labels) in enumerate(loader, start=1):
        logits = model(images)
        loss = F.cross_entropy(logits, labels, label_smoothing=recipe.label_smoothing)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        loss_sum = loss_sum + loss.data * len(labels)
        correct = correct + (logits.data.argmax(axis=1) == labels.data).sum()
        seen += len(labels)
        progress.update(step, seen, lambda: {"loss": f"{float(loss_sum) / seen:.4f}",
                                             "acc": f"{100 * float(correct) / seen:.2f}%"})
    return float(loss_sum) / seen, 100 * float(correct) / seen, progress.close()


def evaluate(model: Net, loader: DataLoader) -> tuple[float, float]:
    """Mean cross-entropy and accuracy (%) over ``loader``, without building a graph."""
    model.eval()
    loss_sum = correct = seen = 0
    with tinydl.no_grad():
        for images, labels in loader:
            logits = model(images)
            loss_sum = loss_sum + F.cross_entropy(logits, labels, reduction="sum").data
            correct = correct + (logits.data.argmax(axis=1) == labels.data).sum()
            seen += len(labels)
    return float(loss_sum) / seen, 100 * float(correct) / seen


def main(argv: Sequence[str] | None = None) -> float:
    """Train as the command line says; returns the final test accuracy in percent."""
    args = parse_arguments(argv)
    recipe = chosen_recipe(args)
    config = {"recipe": args.recipe, **dataclasses.asdict(recipe), "seed": args.seed,
              "limit_train": args.limit_train or 0, "limit_test": args.limit_test or 0}
    tinydl.manual_seed(args.seed)
    train_loader, test_loader = make_loaders(args, recipe)
    model = Net().to(args.device)
    optimizer = optim.Adam(model.parameters(), lr=recipe.lr)
    scheduler = (optim.lr_scheduler.OneCycleLR(optimizer, max_lr=recipe.lr,
                                               total_steps=recipe.epochs * len(train_loader))
                 if recipe.one_cycle else None)
    history: dict[str, list[float]] = {"train_loss": [], "test_loss": [], "train_acc": [], "test_acc": []}
    start_epoch = 0
    if args.resume:
        checkpoint = load_checkpoint(args.checkpoint_dir, args.device)
        check_same_config(checkpoint["config"], config)
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        if scheduler is not None:
            scheduler.load_state_dict(checkpoint["scheduler"])
        train_loader.load_state_dict(checkpoint["loader"])
        history = checkpoint["history"]
        start_epoch = checkpoint["epoch"]
        print(f"resumed from {args.checkpoint_dir} after epoch {start_epoch}")
    print(f"recipe {args.recipe}: {recipe}; {len(train_loader.dataset)} training and {len(test_loader.dataset)} "
          f"test images on {args.device}")

    for epoch in range(start_epoch, recipe.epochs):
        prefix = f"epoch {epoch + 1}/{recipe.epochs}"
        train_loss, train_acc, seconds = train_one_epoch(model, train_loader, optimizer, scheduler, recipe, prefix)
        test_loss, test_acc = evaluate(model, test_loader)
        for name, value in (("train_loss", train_loss), ("test_loss", test_loss), ("train_acc", train_acc),
                            ("test_acc", test_acc)):
            history[name].append(value)
        save_checkpoint(args.checkpoint_dir, {
            "config": config, "epoch": epoch + 1, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "scheduler": None if scheduler is None else scheduler.state_dict(),
            "loader": train_loader.state_dict(), "history": history})
        print(f"{prefix}: train loss {train_loss:.4f} acc {train_acc:.2f}% | test loss {test_loss:.4f} "
              f"acc {test_acc:.2f}% | {format_duration(seconds)} ({seconds:.1f} s, "
              f"{len(train_loader.dataset) / seconds:.0f} images/s)", flush=True)

    if args.plot:
        plot_curves(history, args.plot, f"CIFAR-10 CNN, recipe {args.recipe}")
    if not history["test_acc"]:
        raise SystemExit(f"cnn_cifar10: nothing trained (epochs={recipe.epochs})")
    print(f"test accuracy: {history['test_acc'][-1]:.2f}%")
    return history["test_acc"][-1]


if __name__ == "__main__":
    main()
