"""Every layer against its PyTorch twin: same weights (loaded from PyTorch's state dict), same inputs, same
upstream gradient; outputs, gradients and buffers agree in float64."""
import numpy as np
import pytest

import tinydl
from tinydl import nn

from .oracle import assert_matches, copy_weights, requires, torch

rng = np.random.default_rng(1234)


def twins(ours, theirs):
    """The two modules in float64, the tinydl one holding PyTorch's weights."""
    theirs = theirs.double()
    ours.double()
    copy_weights(ours, theirs)
    return ours, theirs


LAYERS = [
    pytest.param(lambda: nn.Linear(5, 3), lambda: torch.nn.Linear(5, 3), (4, 2, 5), id="linear"),
    pytest.param(lambda: nn.Linear(5, 3, bias=False), lambda: torch.nn.Linear(5, 3, bias=False), (4, 5),
                 id="linear-no-bias"),
    pytest.param(lambda: nn.Conv2d(3, 4, 3, padding=1), lambda: torch.nn.Conv2d(3, 4, 3, padding=1), (2, 3, 6, 5),
                 id="conv", marks=requires("conv2d")),
    pytest.param(lambda: nn.Conv2d(4, 6, (3, 2), stride=(2, 1), padding=(1, 0), dilation=(1, 2), groups=2,
                                   bias=False),
                 lambda: torch.nn.Conv2d(4, 6, (3, 2), stride=(2, 1), padding=(1, 0), dilation=(1, 2), groups=2,
                                         bias=False), (2, 4, 7, 6), id="conv-strided-dilated-grouped",
                 marks=requires("conv2d")),
    pytest.param(lambda: nn.Conv2d(2, 3, 3, padding="same"), lambda: torch.nn.Conv2d(2, 3, 3, padding="same"),
                 (1, 2, 5, 5), id="conv-same", marks=requires("conv2d")),
    pytest.param(lambda: nn.MaxPool2d(2), lambda: torch.nn.MaxPool2d(2), (2, 3, 6, 4), id="maxpool",
                 marks=requires("max_pool2d")),
    pytest.param(lambda: nn.MaxPool2d(3, stride=2, padding=1), lambda: torch.nn.MaxPool2d(3, 2, 1), (2, 2, 7, 6),
                 id="maxpool-overlapping", marks=requires("max_pool2d")),
    pytest.param(lambda: nn.MaxPool2d(2, ceil_mode=True), lambda: torch.nn.MaxPool2d(2, ceil_mode=True),
                 (1, 2, 5, 5), id="maxpool-ceil", marks=requires("max_pool2d")),
    pytest.param(lambda: nn.AvgPool2d(2), lambda: torch.nn.AvgPool2d(2), (2, 3, 6, 4), id="avgpool",
                 marks=requires("avg_pool2d")),
    pytest.param(lambda: nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False),
                 lambda: torch.nn.AvgPool2d(3, 2, 1, count_include_pad=False), (2, 2, 7, 6),
                 id="avgpool-padded", marks=requires("avg_pool2d")),
    pytest.param(lambda: nn.AdaptiveAvgPool2d((2, 3)), lambda: torch.nn.AdaptiveAvgPool2d((2, 3)), (2, 3, 7, 8),
                 id="adaptive-avgpool", marks=requires("adaptive_avg_pool2d")),
    pytest.param(lambda: nn.AdaptiveAvgPool2d(1), lambda: torch.nn.AdaptiveAvgPool2d(1), (2, 3, 5, 4),
                 id="global-avgpool", marks=requires("adaptive_avg_pool2d")),
    pytest.param(lambda: nn.BatchNorm2d(3), lambda: torch.nn.BatchNorm2d(3), (4, 3, 2, 5), id="batchnorm2d"),
    pytest.param(lambda: nn.BatchNorm2d(3, momentum=None, affine=False),
                 lambda: torch.nn.BatchNorm2d(3, momentum=None, affine=False), (4, 3, 2, 2),
                 id="batchnorm2d-cumulative"),
    pytest.param(lambda: nn.BatchNorm2d(3, track_running_stats=False),
                 lambda: torch.nn.BatchNorm2d(3, track_running_stats=False), (4, 3, 2, 2),
                 id="batchnorm2d-no-running-stats"),
    pytest.param(lambda: nn.BatchNorm1d(4), lambda: torch.nn.BatchNorm1d(4), (5, 4), id="batchnorm1d"),
    pytest.param(lambda: nn.BatchNorm1d(4), lambda: torch.nn.BatchNorm1d(4), (3, 4, 6), id="batchnorm1d-3d"),
    pytest.param(lambda: nn.LayerNorm(6), lambda: torch.nn.LayerNorm(6), (2, 3, 6), id="layernorm"),
    pytest.param(lambda: nn.LayerNorm((3, 4), bias=False), lambda: torch.nn.LayerNorm((3, 4), bias=False),
                 (2, 3, 4), id="layernorm-2d-no-bias"),
    pytest.param(lambda: nn.Flatten(), lambda: torch.nn.Flatten(), (2, 3, 4, 5), id="flatten"),
    pytest.param(lambda: nn.Flatten(0, 2), lambda: torch.nn.Flatten(0, 2), (2, 3, 4, 5), id="flatten-range"),
    pytest.param(lambda: nn.Identity(7), lambda: torch.nn.Identity(7), (3, 2), id="identity"),
    pytest.param(lambda: nn.ReLU(), lambda: torch.nn.ReLU(), (3, 4), id="relu"),
    pytest.param(lambda: nn.LeakyReLU(0.2), lambda: torch.nn.LeakyReLU(0.2), (3, 4), id="leaky-relu"),
    pytest.param(lambda: nn.GELU(), lambda: torch.nn.GELU(), (3, 4), id="gelu"),
    pytest.param(lambda: nn.GELU("tanh"), lambda: torch.nn.GELU("tanh"), (3, 4), id="gelu-tanh"),
    pytest.param(lambda: nn.Tanh(), lambda: torch.nn.Tanh(), (3, 4), id="tanh"),
    pytest.param(lambda: nn.Sigmoid(), lambda: torch.nn.Sigmoid(), (3, 4), id="sigmoid"),
    pytest.param(lambda: nn.Softmax(dim=1), lambda: torch.nn.Softmax(dim=1), (3, 4, 2), id="softmax"),
    pytest.param(lambda: nn.LogSoftmax(dim=-1), lambda: torch.nn.LogSoftmax(dim=-1), (3, 4), id="log-softmax"),
    pytest.param(lambda: nn.Dropout(0.0), lambda: torch.nn.Dropout(0.0), (3, 4), id="dropout-p0"),
]


@pytest.mark.parametrize("make_ours, make_theirs, shape", LAYERS)
def test_layer_matches_pytorch_in_training_and_evaluation_mode(make_ours, make_theirs, shape):
    ours, theirs = twins(make_ours(), make_theirs())
    assert [(n, tuple(p.shape)) for n, p in ours.named_parameters()] == \
        [(n, tuple(p.shape)) for n, p in theirs.named_parameters()]
    assert list(ours.state_dict()) == list(theirs.state_dict())
    for step in range(2):  # twice, so that running statistics are updated from non-initial values
        assert_matches(ours, theirs, rng.standard_normal(shape), seed=step)
    ours.eval(), theirs.eval()
    assert_matches(ours, theirs, rng.standard_normal(shape), seed=2)


def test_batch_norm_uses_running_statistics_in_evaluation_mode():
    norm = nn.BatchNorm2d(2).double()
    norm.running_mean.data[...] = [1.0, -2.0]
    norm.running_var.data[...] = [4.0, 0.25]
    x = rng.standard_normal((3, 2, 2, 2))
    expected = (x - np.array([1.0, -2.0])[:, None, None]) / np.sqrt(np.array([4.0, 0.25]) + 1e-5)[:, None, None]
    np.testing.assert_allclose(norm.eval()(tinydl.tensor(x)).numpy(), expected, rtol=1e-12)
    assert norm.num_batches_tracked.item() == 0  # evaluation does not count batches


def test_batch_norm_rejects_wrong_input_rank_or_channels():
    with pytest.raises(ValueError, match=r"BatchNorm2d: expected a 4-D input with 3 channels .* shape \(2, 3\)"):
        nn.BatchNorm2d(3)(tinydl.zeros(2, 3))
    with pytest.raises(ValueError, match=r"BatchNorm1d: expected a 2-D or 3-D input with 3 channels"):
        nn.BatchNorm1d(3)(tinydl.zeros(2, 4))


@pytest.mark.parametrize("p", [0.2, 0.7])
def test_dropout_zeroes_a_fraction_p_and_rescales_in_training_only(p):
    layer = nn.Dropout(p)
    x = tinydl.ones(200, 500)
    y = layer(x).numpy()
    kept = y != 0
    assert kept.mean() == pytest.approx(1 - p, abs=0.01)
    np.testing.assert_allclose(y[kept], 1 / (1 - p), rtol=1e-6)
    np.testing.assert_array_equal(layer.eval()(x).numpy(), x.numpy())


def test_dropout_probability_is_checked():
    with pytest.raises(ValueError, match=r"Dropout: probability p must be in \[0, 1\], got 1.5"):
        nn.Dropout(1.5)


LOSSES = [
    pytest.param(lambda: nn.CrossEntropyLoss(), lambda: torch.nn.CrossEntropyLoss(), id="cross-entropy"),
    pytest.param(lambda: nn.CrossEntropyLoss(reduction="sum", label_smoothing=0.1),
                 lambda: torch.nn.CrossEntropyLoss(reduction="sum", label_smoothing=0.1), id="ce-smoothed-sum"),
    pytest.param(lambda: nn.CrossEntropyLoss(weight=tinydl.tensor([0.5, 2.0, 1.0, 0.1], dtype=tinydl.float64),
                                             ignore_index=2),
                 lambda: torch.nn.CrossEntropyLoss(weight=torch.tensor([0.5, 2.0, 1.0, 0.1], dtype=torch.float64),
                                                   ignore_index=2), id="ce-weighted-ignore"),
    pytest.param(lambda: nn.NLLLoss(), lambda: torch.nn.NLLLoss(), id="nll"),
    pytest.param(lambda: nn.NLLLoss(reduction="none"), lambda: torch.nn.NLLLoss(reduction="none"), id="nll-none"),
]


@pytest.mark.parametrize("make_ours, make_theirs", LOSSES)
def test_classification_loss_matches_pytorch(make_ours, make_theirs):
    ours, theirs = make_ours(), make_theirs()
    assert list(ours.state_dict()) == list(theirs.state_dict())  # a class weight is a buffer in both
    logits = rng.standard_normal((6, 4))
    targets = np.array([0, 2, 1, 3, 2, 0])
    assert_matches(ours, theirs, logits, targets)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_mse_loss_matches_pytorch(reduction):
    assert_matches(nn.MSELoss(reduction), torch.nn.MSELoss(reduction=reduction), rng.standard_normal((3, 4)),
                   rng.standard_normal((3, 4)))


def test_losses_check_their_reduction():
    with pytest.raises(ValueError, match="CrossEntropyLoss: reduction must be one of .* got 'avg'"):
        nn.CrossEntropyLoss(reduction="avg")


def test_layer_constructor_arguments_are_checked():
    with pytest.raises(ValueError, match=r"in_channels \(3\) and out_channels \(4\) must both be divisible by "
                                         r"groups \(2\)"):
        nn.Conv2d(3, 4, 3, groups=2)
    with pytest.raises(ValueError, match="padding='same' needs stride 1"):
        nn.Conv2d(3, 4, 3, stride=2, padding="same")
    with pytest.raises(ValueError, match="kernel_size must be an int or a pair of ints, got"):
        nn.Conv2d(3, 4, (3, 3, 3))
    with pytest.raises(ValueError, match="in_features must be a non-negative int, got -1"):
        nn.Linear(-1, 2)
    with pytest.raises(ValueError, match="LayerNorm: normalized_shape"):
        nn.LayerNorm(())
    with pytest.raises(ValueError, match="GELU: approximate must be"):
        nn.GELU("fast")


def test_float32_layers_stay_float32():
    x = tinydl.randn(2, 3, 4, 4)
    for layer in (nn.BatchNorm2d(3), nn.LayerNorm(4), nn.Flatten(), nn.ReLU(), nn.GELU()):
        assert layer(x).dtype == np.float32
    assert nn.Linear(4, 2)(x).dtype == np.float32
