"""The seed CNN of the article (examples/cnn_cifar10.py) and one training step, shared by the inside tests."""
import pathlib
import sys

import numpy as np

import tinydl
import tinydl.functional as F

sys.path.insert(0, str(pathlib.Path(__file__).parents[2] / "examples"))
from cnn_cifar10 import Net  # noqa: E402


def cnn_and_batch(batch=8, seed=0):
    tinydl.manual_seed(seed)
    model = Net()
    images = tinydl.randn(batch, 3, 32, 32)
    labels = tinydl.tensor(np.arange(batch) % 10)
    return model, images, labels


def step(model, images, labels):
    loss = F.cross_entropy(model(images), labels)
    loss.backward()
    return loss


def hand_count(batch):
    """FLOPs of one training step counted by hand: the matrix products only (2 per multiply-add).

    Forward multiply-adds per image: conv1 64*32*32*(3*3*3), conv2 128*16*16*(64*3*3), fc1 8192*512, fc2 512*10.
    Backward: two products of the same size per layer (input and weight gradients), except conv1, whose input
    (the images) needs no gradient.
    """
    macs = [64 * 32 * 32 * 27, 128 * 16 * 16 * 576, 8192 * 512, 512 * 10]
    forward = 2 * batch * sum(macs)
    backward = 2 * forward - 2 * batch * macs[0]
    return forward + backward
