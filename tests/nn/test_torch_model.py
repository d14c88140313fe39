"""The article's CIFAR-10 CNN built in tinydl and in PyTorch: PyTorch's weights, converted to NumPy, load into
tinydl; outputs, loss, gradients and a few Adam steps then agree."""
import numpy as np
import pytest

import tinydl
from tinydl import nn, optim

from .oracle import copy_weights, requires, torch


def article_cnn(library, width=64, hidden=512):
    """conv 3->64, ReLU, maxpool 2, conv 64->128, ReLU, maxpool 2, Linear 8192->512, ReLU, Linear 512->10 (or the
    same with ``width`` and ``hidden`` in place of 64 and 512), written once for both libraries (``library`` is
    tinydl.nn or torch.nn)."""
    return library.Sequential(
        library.Conv2d(3, width, 3, padding=1), library.ReLU(), library.MaxPool2d(2),
        library.Conv2d(width, 2 * width, 3, padding=1), library.ReLU(), library.MaxPool2d(2),
        library.Flatten(), library.Linear(2 * width * 8 * 8, hidden), library.ReLU(), library.Linear(hidden, 10))


def test_parameter_names_and_shapes_match_pytorch():
    ours, theirs = article_cnn(nn), article_cnn(torch.nn)
    assert [(k, tuple(v.shape)) for k, v in ours.state_dict().items()] == \
        [(k, tuple(v.shape)) for k, v in theirs.state_dict().items()]
    assert sum(p.size for p in ours.parameters()) == sum(p.numel() for p in theirs.parameters()) == (
        64 * 3 * 9 + 64 + 128 * 64 * 9 + 128 + 8192 * 512 + 512 + 512 * 10 + 10)


@requires("conv2d", "max_pool2d", "cross_entropy")
@pytest.mark.parametrize("width, hidden", [pytest.param(8, 32, id="narrow"),
                                           pytest.param(64, 512, id="article", marks=pytest.mark.slow)])
def test_pytorch_weights_give_the_same_outputs_gradients_and_training_steps(width, hidden):
    torch.manual_seed(0)
    theirs = article_cnn(torch.nn, width, hidden).double()
    ours = article_cnn(nn, width, hidden).double()
    copy_weights(ours, theirs)
    rng = np.random.default_rng(0)
    ours_opt = optim.Adam(ours.parameters(), lr=1e-3)
    their_opt = torch.optim.Adam(theirs.parameters(), lr=1e-3)
    for step in range(3):
        images = rng.standard_normal((4, 3, 32, 32))
        labels = rng.integers(0, 10, size=4)
        their_loss = torch.nn.functional.cross_entropy(theirs(torch.tensor(images)), torch.tensor(labels))
        ours_loss = nn.CrossEntropyLoss()(ours(tinydl.tensor(images)), tinydl.tensor(labels))
        assert ours_loss.item() == pytest.approx(their_loss.item(), rel=1e-10)
        their_opt.zero_grad(), ours_opt.zero_grad()
        their_loss.backward(), ours_loss.backward()
        their_params = dict(theirs.named_parameters())
        for name, param in ours.named_parameters():
            np.testing.assert_allclose(param.grad.numpy(), their_params[name].grad.numpy(), rtol=1e-8, atol=1e-12,
                                       err_msg=f"step {step}: gradient of {name}")
        their_opt.step(), ours_opt.step()
    for name, value in theirs.state_dict().items():
        np.testing.assert_allclose(ours.state_dict()[name].numpy(), value.numpy(), rtol=1e-8, atol=1e-10,
                                   err_msg=name)
