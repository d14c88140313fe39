"""The CNN of examples/cnn_cifar10.py trained in PyTorch with the very same initial weights, batches and recipe.

    python examples/torch_reference/cnn_cifar10_torch.py --recipe article --data-dir data

The data loaders (order, augmentation, scaling) and the initial weights come from the tinydl example itself
(tinydl.manual_seed(seed), then its Net's state dict copied into the PyTorch twin), so the only difference between
the two runs is the engine. Prints the test accuracy after every epoch and ends with the same final line,
``test accuracy: NN.NN%``. This is the evidence that tinydl's kernels train the model as PyTorch's do.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Sequence

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tinydl example whose recipe this follows

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

import tinydl  # noqa: E402
from cnn_cifar10 import Net, chosen_recipe, make_loaders, parse_arguments  # noqa: E402


class TorchNet(nn.Module):
    """The article's CNN, with the tinydl example's attribute names (so the state dicts line up)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 3, padding=1)
        self.conv2 = nn.Conv2d(64, 128, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.fc1 = nn.Linear(128 * 8 * 8, 512)
        self.fc2 = nn.Linear(512, 10)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.pool(F.relu(self.conv1(images)))
        x = self.pool(F.relu(self.conv2(x)))
        return self.fc2(F.relu(self.fc1(x.flatten(1))))


def as_torch(tensor: tinydl.Tensor) -> torch.Tensor:
    return torch.from_numpy(tensor.numpy())


def main(argv: Sequence[str] | None = None) -> float:
    args = parse_arguments(argv)
    recipe = chosen_recipe(args)
    tinydl.manual_seed(args.seed)
    train_loader, test_loader = make_loaders(args, recipe)
    model = TorchNet()
    model.load_state_dict({k: torch.from_numpy(v.numpy().copy()) for k, v in Net().state_dict().items()})
    optimizer = torch.optim.Adam(model.parameters(), lr=recipe.lr)
    scheduler = (torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=recipe.lr,
                                                     total_steps=recipe.epochs * len(train_loader))
                 if recipe.one_cycle else None)
    accuracy = 0.0
    for epoch in range(recipe.epochs):
        start, loss_sum, correct, seen = time.perf_counter(), 0.0, 0, 0
        model.train()
        for images, labels in train_loader:
            x, y = as_torch(images), as_torch(labels)
            logits = model(x)
            loss = F.cross_entropy(logits, y, label_smoothing=recipe.label_smoothing)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            loss_sum += loss.item() * len(y)
            correct += int((logits.argmax(1) == y).sum())
            seen += len(y)
        model.eval()
        test_correct = test_seen = 0
        with torch.no_grad():
            for images, labels in test_loader:
                test_correct += int((model(as_torch(images)).argmax(1) == as_torch(labels)).sum())
                test_seen += len(labels)
        accuracy = 100 * test_correct / test_seen
        print(f"epoch {epoch + 1}/{recipe.epochs}: train loss {loss_sum / seen:.4f} acc {100 * correct / seen:.2f}% "
              f"| test acc {accuracy:.2f}% | {time.perf_counter() - start:.1f} s", flush=True)
    print(f"test accuracy: {accuracy:.2f}%")
    return accuracy


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
