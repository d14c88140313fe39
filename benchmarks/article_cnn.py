"""The article's CIFAR-10 CNN as the benchmarks build it for PyTorch (and for a tinydl tree imported under
another name), and one Adam training step of a model, written once for every library: tinydl and PyTorch share
these names (``nn.Sequential``, ``loss.backward()``, ``optimizer.zero_grad()``)."""
from __future__ import annotations

from typing import Any, Callable


def article_cnn(nn: Any) -> Any:
    """The model of examples/cnn_cifar10.py from a library's ``nn``, as a Sequential."""
    return nn.Sequential(nn.Conv2d(3, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(64, 128, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(8192, 512), nn.ReLU(), nn.Linear(512, 10))


def training_step(model: Any, optimizer: Any, loss_function: Callable, x: Any, y: Any) -> Callable[[], None]:
    """A function that runs one step on (x, y): forward, loss, zero the gradients, backward, update."""
    def step() -> None:
        loss = loss_function(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return step
