"""nn.init: gains and fans against PyTorch, the distributions drawn, reproducibility, layer defaults."""
import math

import numpy as np
import pytest

import tinydl
from tinydl import nn
from tinydl.nn import init

torch = pytest.importorskip("torch")


@pytest.mark.parametrize("nonlinearity, param", [
    ("linear", None), ("conv2d", None), ("sigmoid", None), ("tanh", None), ("relu", None), ("leaky_relu", None),
    ("leaky_relu", 0.2), ("leaky_relu", math.sqrt(5)), ("selu", None)])
def test_calculate_gain_matches_pytorch(nonlinearity, param):
    assert init.calculate_gain(nonlinearity, param) == pytest.approx(
        torch.nn.init.calculate_gain(nonlinearity, param), rel=1e-12)


@pytest.mark.parametrize("shape", [(5, 3), (8, 4, 3, 3), (6, 2, 5), (1, 1)])
def test_fan_in_and_fan_out_match_pytorch(shape):
    assert init._calculate_fan_in_and_fan_out(tinydl.zeros(shape)) == \
        torch.nn.init._calculate_fan_in_and_fan_out(torch.zeros(shape))


def test_fans_need_two_dimensions():
    with pytest.raises(ValueError, match=r"at least 2 dimensions, got shape \(4,\)"):
        init.xavier_uniform_(tinydl.zeros(4))


def _moments(tensor):
    values = tensor.numpy().astype(np.float64)
    return values.mean(), values.std(), values.min(), values.max()


@pytest.mark.parametrize("shape", [(300, 200), (64, 32, 3, 3)])
def test_uniform_initialisations_fill_the_documented_interval(shape):
    fan_in, fan_out = shape[1] * math.prod(shape[2:]), shape[0] * math.prod(shape[2:])
    cases = [
        (lambda t: init.uniform_(t, -0.5, 2.0), -0.5, 2.0),
        (lambda t: init.xavier_uniform_(t, gain=2.0), -2.0 * math.sqrt(6 / (fan_in + fan_out)), None),
        (lambda t: init.kaiming_uniform_(t, a=math.sqrt(5)), -1 / math.sqrt(fan_in), None),
        (lambda t: init.kaiming_uniform_(t, mode="fan_out", nonlinearity="relu"), -math.sqrt(6 / fan_out), None),
    ]
    for fill, low, high in cases:
        high = -low if high is None else high
        tensor = tinydl.zeros(shape)
        assert fill(tensor) is tensor
        mean, std, smallest, largest = _moments(tensor)
        width = high - low
        assert low <= smallest and largest <= high
        assert smallest < low + 0.01 * width and largest > high - 0.01 * width  # the whole interval is used
        assert mean == pytest.approx((low + high) / 2, abs=0.02 * width)
        assert std == pytest.approx(width / math.sqrt(12), rel=0.03)


def test_normal_initialisations_have_the_documented_standard_deviation():
    shape = (400, 100)
    fan_in, fan_out = 100, 400
    cases = [(lambda t: init.normal_(t, 1.5, 0.2), 1.5, 0.2),
             (lambda t: init.xavier_normal_(t), 0.0, math.sqrt(2 / (fan_in + fan_out))),
             (lambda t: init.kaiming_normal_(t, nonlinearity="relu"), 0.0, math.sqrt(2 / fan_in)),
             (lambda t: init.kaiming_normal_(t, a=0.1, mode="fan_out"), 0.0,
              math.sqrt(2 / (1 + 0.01)) / math.sqrt(fan_out))]
    for fill, mean, std in cases:
        tensor = fill(tinydl.zeros(shape))
        measured_mean, measured_std, _, _ = _moments(tensor)
        assert measured_mean == pytest.approx(mean, abs=0.02 * std)
        assert measured_std == pytest.approx(std, rel=0.02)


def test_constant_zeros_ones_keep_dtype_and_memory():
    tensor = tinydl.zeros(3, dtype=tinydl.float64)
    array = tensor.data
    init.constant_(tensor, 2.5)
    assert tensor.data is array and tensor.dtype == np.float64 and (tensor.numpy() == 2.5).all()
    assert (init.ones_(tensor).numpy() == 1).all() and (init.zeros_(tensor).numpy() == 0).all()


def test_initialisations_work_on_parameters_that_require_grad_and_record_nothing():
    weight = nn.Parameter(tinydl.zeros(4, 3))
    init.kaiming_uniform_(weight)
    assert weight.is_leaf and weight.grad is None and weight.detach().numpy().any()


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="unsupported nonlinearity 'swish'"):
        init.calculate_gain("swish")
    with pytest.raises(ValueError, match="mode must be 'fan_in' or 'fan_out', got 'fan'"):
        init.kaiming_normal_(tinydl.zeros(2, 2), mode="fan")
    with pytest.raises(TypeError, match="floating-point"):
        init.uniform_(tinydl.zeros(3, dtype=tinydl.int64))


def test_manual_seed_makes_layer_initialisation_reproducible():
    tinydl.manual_seed(123)
    first = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Linear(5, 6)).state_dict()
    tinydl.manual_seed(123)
    second = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Linear(5, 6)).state_dict()
    third = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Linear(5, 6)).state_dict()
    for key in first:
        np.testing.assert_array_equal(first[key].numpy(), second[key].numpy())
        assert not np.array_equal(first[key].numpy(), third[key].numpy())


@pytest.mark.parametrize("make, fan_in", [(lambda: nn.Linear(200, 300), 200),
                                          (lambda: nn.Conv2d(16, 64, 5, groups=2), 8 * 25)])
def test_layer_defaults_are_pytorchs(make, fan_in):
    """Weight and bias uniform in +-1/sqrt(fan_in), as PyTorch's kaiming_uniform_(a=sqrt(5)) and bias rule."""
    layer = make()
    bound = 1 / math.sqrt(fan_in)
    for param in (layer.weight, layer.bias):
        values = param.detach().numpy()
        assert values.dtype == np.float32
        assert np.abs(values).max() <= bound
    _, std, smallest, largest = _moments(layer.weight.detach())
    assert std == pytest.approx(2 * bound / math.sqrt(12), rel=0.03)
    assert smallest < -0.95 * bound and largest > 0.95 * bound


def test_batch_and_layer_norm_start_as_the_identity_affine_map():
    bn, ln = nn.BatchNorm2d(3), nn.LayerNorm((2, 3))
    for module in (bn, ln):
        assert (module.weight.detach().numpy() == 1).all() and (module.bias.detach().numpy() == 0).all()
    assert (bn.running_var.numpy() == 1).all() and bn.num_batches_tracked.item() == 0
