"""Train the article's convolutional network on CIFAR-10 with tinydl.

    python examples/cnn_cifar10.py                       # the best recipe found (default), 20 epochs
    python examples/cnn_cifar10.py --recipe article      # the article's recipe: Adam 1e-3, batch 64, 10 epochs
    python examples/cnn_cifar10.py --resume              # continue from the last complete epoch
    mpiexec -n 2 python -m mpi4py examples/cnn_cifar10.py --distributed  # data-parallel over 2 processes (tinydl[distributed])

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

With ``--distributed``, under ``mpiexec -n N``, the N processes train one model together: each takes 1/N of every
global batch (which N must divide), gradients are averaged after each backward (DistributedDataParallel), each
process uses one BLAS thread, the test set is split between them, losses and accuracies are summed over all of
them, rank 0 alone prints and writes the checkpoint. The progress line shows rank 0's shard; the epoch lines show
the whole batch. See docs/distributed.md.
"""
from __future__ import annotations

import argparse
import dataclasses
import io
import os
import sys
from pathlib import Path
from typing import Any, Sequence

if "--distributed" in sys.argv[1:]:  # one BLAS thread per process: N processes share the machine's cores. This
    for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):  # must precede numpy's import
        os.environ.setdefault(_variable, "1")

sys.path.insert(0, str(Path(__file__).resolve().parent))  # _common, when this file is imported by a test

import numpy as np  # noqa: E402

import tinydl  # noqa: E402
import tinydl.functional as F  # noqa: E402
from tinydl import nn, optim  # noqa: E402
from tinydl.data import CIFAR10, DataLoader, Subset, transforms as T  # noqa: E402

from _common import (CHECKPOINT_NAME, Progress, add_training_arguments, check_same_config,  # noqa: E402
                     data_or_exit, format_duration, load_checkpoint, plot_curves, positive_int,
                     save_checkpoint, with_overrides)

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
    parser.add_argument("--distributed", action="store_true",
                        help="data-parallel training: launch with mpiexec -n N (needs tinydl[distributed])")
    add_training_arguments(parser, checkpoint_dir="checkpoints/cnn_cifar10")
    return parser.parse_args(argv)


def join_world(args: argparse.Namespace, recipe: "Recipe") -> Any:
    """``tinydl.distributed`` after joining the MPI world (or None without --distributed); refuses a world size
    that does not divide the global batch, since the ranks' shards must be equal for the averaged gradient to be
    the whole batch's."""
    if not args.distributed:
        return None
    import tinydl.distributed as dist
    try:
        dist.init(require_mpi=True)
    except ImportError as error:
        raise SystemExit(f"cnn_cifar10: --distributed needs mpi4py and MPI: {dist.INSTALL_HINT}\n({error})")
    if recipe.batch_size % dist.world_size():
        raise SystemExit(f"cnn_cifar10: the global batch of {recipe.batch_size} cannot be split evenly over "
                         f"{dist.world_size()} processes; use a number of processes that divides it, or a "
                         f"--batch-size that is a multiple of {dist.world_size()}")
    if args.device.startswith("cuda") and ":" not in args.device:
        args.device = f"cuda:{dist.local_rank()}"  # one GPU per process on each machine (NCCL needs that)
    return dist


def chosen_recipe(args: argparse.Namespace) -> Recipe:
    """The named recipe, with the hyperparameters given on the command line in place of its own."""
    overrides = {"epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr, "augment": args.augment}
    return with_overrides(RECIPES[args.recipe], overrides)


def load_dataset(args: argparse.Namespace, train: bool) -> CIFAR10 | Subset:
    limit = args.limit_train if train else args.limit_test
    with data_or_exit("cnn_cifar10", "or add --download to fetch the official archive into --data-dir"):
        dataset = CIFAR10(args.data_dir, train=train, download=args.download)
    return Subset(dataset, range(min(limit, len(dataset)))) if limit else dataset


def make_loaders(args: argparse.Namespace, recipe: Recipe, dist: Any) -> tuple[DataLoader, DataLoader]:
    """Training and test loaders; with ``dist``, this rank's shards (a 1/N share of every global batch, and an
    unpadded 1/N of the test set, so that summed counts are exact)."""
    scale = [T.ToFloat()] + ([T.Normalize(CIFAR10_MEAN, CIFAR10_STD)] if recipe.normalize else [])
    augment = [T.RandomCrop(32, padding=4), T.RandomHorizontalFlip()] if recipe.augment else []
    train_set, test_set = load_dataset(args, train=True), load_dataset(args, train=False)
    if dist is None:
        train = DataLoader(train_set, batch_size=recipe.batch_size, shuffle=True, seed=args.seed,
                           transform=T.Compose(augment + scale), device=args.device)
        test = DataLoader(test_set, batch_size=TEST_BATCH_SIZE, transform=T.Compose(scale), device=args.device)
        return train, test
    train = DataLoader(train_set, batch_size=recipe.batch_size // dist.world_size(), seed=args.seed,
                       sampler=dist.DistributedSampler(train_set, shuffle=True, seed=args.seed),
                       transform=T.Compose(augment + scale), device=args.device)
    test = DataLoader(test_set, batch_size=TEST_BATCH_SIZE, transform=T.Compose(scale), device=args.device,
                      sampler=dist.DistributedSampler(test_set, shuffle=False, pad=False))
    return train, test


def summed_over_ranks(dist: Any, *values: float) -> list[float]:
    """``values`` summed over every rank (unchanged without ``dist``)."""
    if dist is None:
        return [float(value) for value in values]
    return dist.all_reduce(np.array([float(value) for value in values])).tolist()


def train_one_epoch(model: nn.Module, loader: DataLoader, optimizer: optim.Optimizer, scheduler: Any,
                    recipe: Recipe, prefix: str, dist: Any = None) -> tuple[float, float, float]:
    """One pass over ``loader``: mean loss, accuracy (%) and seconds (over every rank with ``dist``). Sums stay on
    the device until shown."""
    model.train()
    shown = dist is None or dist.is_main()
    progress = Progress(prefix, len(loader), unit="images", stream=None if shown else io.StringIO())
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
    seconds = progress.close()
    loss_sum, correct, seen = summed_over_ranks(dist, loss_sum, correct, seen)
    return loss_sum / seen, 100 * correct / seen, seconds


def evaluate(model: nn.Module, loader: DataLoader, dist: Any = None) -> tuple[float, float]:
    """Mean cross-entropy and accuracy (%) over ``loader``, without building a graph."""
    model.eval()
    loss_sum = correct = seen = 0
    with tinydl.no_grad():
        for images, labels in loader:
            logits = model(images)
            loss_sum = loss_sum + F.cross_entropy(logits, labels, reduction="sum").data
            correct = correct + (logits.data.argmax(axis=1) == labels.data).sum()
            seen += len(labels)
    loss_sum, correct, seen = summed_over_ranks(dist, loss_sum, correct, seen)
    return loss_sum / seen, 100 * correct / seen


def main(argv: Sequence[str] | None = None) -> float:
    """Train as the command line says; returns the final test accuracy in percent."""
    args = parse_arguments(argv)
    recipe = chosen_recipe(args)
    dist = join_world(args, recipe)
    main_process = dist is None or dist.is_main()
    say = print if main_process else (lambda *_, **__: None)
    config = {"recipe": args.recipe, **dataclasses.asdict(recipe), "seed": args.seed,
              "limit_train": args.limit_train or 0, "limit_test": args.limit_test or 0,
              **({} if dist is None else {"processes": dist.world_size()})}
    tinydl.manual_seed(args.seed)
    train_loader, test_loader = make_loaders(args, recipe, dist)
    net = Net().to(args.device)
    model = net if dist is None else dist.DistributedDataParallel(net)
    optimizer = optim.Adam(model.parameters(), lr=recipe.lr)
    scheduler = (optim.lr_scheduler.OneCycleLR(optimizer, max_lr=recipe.lr,
                                               total_steps=recipe.epochs * len(train_loader))
                 if recipe.one_cycle else None)
    history: dict[str, list[float]] = {"train_loss": [], "test_loss": [], "train_acc": [], "test_acc": []}
    start_epoch = 0
    if args.resume:
        checkpoint = load_checkpoint(args.checkpoint_dir, args.device)
        check_same_config(checkpoint["config"], config)
        net.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        if scheduler is not None:
            scheduler.load_state_dict(checkpoint["scheduler"])
        train_loader.load_state_dict(checkpoint["loader"])
        history = checkpoint["history"]
        start_epoch = checkpoint["epoch"]
        say(f"resumed from {args.checkpoint_dir} after epoch {start_epoch}")
    say(f"recipe {args.recipe}: {recipe}; {len(train_loader.dataset)} training and {len(test_loader.dataset)} "
        f"test images on {args.device}" + ("" if dist is None else f", {dist.world_size()} processes of "
                                           f"{recipe.batch_size // dist.world_size()} images per batch"))

    for epoch in range(start_epoch, recipe.epochs):
        prefix = f"epoch {epoch + 1}/{recipe.epochs}"
        if train_loader.sampler is not None:
            train_loader.sampler.set_epoch(epoch)
        train_loss, train_acc, seconds = train_one_epoch(model, train_loader, optimizer, scheduler, recipe, prefix,
                                                         dist)
        test_loss, test_acc = evaluate(model, test_loader, dist)
        for name, value in (("train_loss", train_loss), ("test_loss", test_loss), ("train_acc", train_acc),
                            ("test_acc", test_acc)):
            history[name].append(value)
        state = {"config": config, "epoch": epoch + 1, "model": net.state_dict(), "optimizer": optimizer.state_dict(),
                 "scheduler": None if scheduler is None else scheduler.state_dict(),
                 "loader": train_loader.state_dict(), "history": history}
        if dist is None:
            save_checkpoint(args.checkpoint_dir, state)
        else:  # rank 0 writes, the others wait until the file is complete
            dist.save(state, Path(args.checkpoint_dir) / CHECKPOINT_NAME)
        say(f"{prefix}: train loss {train_loss:.4f} acc {train_acc:.2f}% | test loss {test_loss:.4f} "
              f"acc {test_acc:.2f}% | {format_duration(seconds)} ({seconds:.1f} s, "
              f"{len(train_loader.dataset) / seconds:.0f} images/s)", flush=True)

    if args.plot and main_process:
        plot_curves(history, args.plot, f"CIFAR-10 CNN, recipe {args.recipe}")
    if not history["test_acc"]:
        raise SystemExit(f"cnn_cifar10: nothing trained (epochs={recipe.epochs})")
    say(f"test accuracy: {history['test_acc'][-1]:.2f}%")
    return history["test_acc"][-1]


if __name__ == "__main__":
    tinydl.keep_freed_memory()  # this program owns its process: reuse freed memory (tinydl/allocator.py)
    main()
