"""Catalogue entries for batch_norm, layer_norm and rms_norm; references loop over channels / normalised
groups / rows."""
import numpy as np
from hypothesis import strategies as st

import tinydl
import tinydl.functional as F
from tinydl.testing import Case, OpSpec, arrays

MIN_VARIANCE = 0.05  # keeps 1 / sqrt(var + eps) moderate, so finite differences of second derivatives are accurate


def _standardise(values, eps):
    return (values - values.mean()) / np.sqrt(values.var() + eps)


@st.composite
def batch_norm_case(draw):
    """x (N, C), (N, C, L) or (N, C, H, W); running statistics; maybe weight and bias; training or not."""
    batch, channels = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    spatial = draw(st.lists(st.integers(1, 3), max_size=2))
    shape = (batch, channels, *spatial)
    training = draw(st.booleans())
    if training and np.prod(shape) // channels < 2:
        shape = (batch + 1,) + shape[1:]
    x = draw(arrays(shape))
    running_mean = draw(arrays((channels,), low=-1.0, high=1.0))
    running_var = draw(arrays((channels,), low=0.2, high=2.0))
    arrays_ = (x, running_mean, running_var)
    if draw(st.booleans()):
        arrays_ += (draw(arrays((channels,), low=-2.0, high=2.0)), draw(arrays((channels,))))
    kwargs = {"training": training, "momentum": draw(st.sampled_from([0.1, 0.5])),
              "eps": draw(st.sampled_from([1e-5, 0.1]))}
    return Case(arrays_, kwargs)


def _channels_spread(case):
    x = case.arrays[0]
    return not case.kwargs["training"] or all(np.var(x[:, c]) >= MIN_VARIANCE for c in range(x.shape[1]))


def _batch_norm(x, running_mean, running_var, weight=None, bias=None, **kwargs):
    """The op on copies of the running statistics (so that the case stays intact)."""
    return F.batch_norm(x, tinydl.tensor(running_mean), tinydl.tensor(running_var), weight, bias, **kwargs)


def _batch_norm_with_statistics(x, running_mean, running_var, weight=None, bias=None, **kwargs):
    """The op and the running statistics it updated in place (copies again)."""
    running_mean, running_var = tinydl.tensor(running_mean), tinydl.tensor(running_var)
    return F.batch_norm(x, running_mean, running_var, weight, bias, **kwargs), running_mean, running_var


def batch_norm_reference(x, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1,
                         eps=1e-5):
    channels = x.shape[1]
    y = np.empty_like(x)
    new_mean, new_var = running_mean.copy(), running_var.copy()
    for c in range(channels):
        values = x[:, c]
        if training:
            y[:, c] = _standardise(values, eps)
            count = values.size
            new_mean[c] = (1 - momentum) * running_mean[c] + momentum * values.mean()
            new_var[c] = (1 - momentum) * running_var[c] + momentum * values.var() * count / (count - 1)
        else:
            y[:, c] = (values - running_mean[c]) / np.sqrt(running_var[c] + eps)
        if weight is not None:
            y[:, c] = y[:, c] * weight[c] + bias[c]
    return y, new_mean, new_var


def batch_norm_output_reference(*arrays, **kwargs):
    return batch_norm_reference(*arrays, **kwargs)[0]


@st.composite
def layer_norm_case(draw):
    x = draw(arrays(st.lists(st.integers(1, 3), min_size=1, max_size=3).map(tuple)))
    normalized_dims = draw(st.integers(1, x.ndim))
    normalized_shape = x.shape[x.ndim - normalized_dims:]
    affine = draw(st.sampled_from(["none", "weight", "both"]))
    arrays_ = (x,)
    if affine != "none":
        arrays_ += (draw(arrays(normalized_shape, low=-2.0, high=2.0)),)
    if affine == "both":
        arrays_ += (draw(arrays(normalized_shape)),)
    return Case(arrays_, {"normalized_shape": normalized_shape, "eps": draw(st.sampled_from([1e-5, 0.1]))})


def _groups_spread(case):
    x, dims = case.arrays[0], len(case.kwargs["normalized_shape"])
    groups = x.reshape((-1,) + x.shape[x.ndim - dims:]).reshape(-1, int(np.prod(x.shape[x.ndim - dims:])))
    return all(np.var(group) >= MIN_VARIANCE for group in groups)


def _layer_norm(x, weight=None, bias=None, normalized_shape=(), eps=1e-5):
    return F.layer_norm(x, normalized_shape, weight, bias, eps)


def layer_norm_reference(x, weight=None, bias=None, normalized_shape=(), eps=1e-5):
    size = int(np.prod(normalized_shape))
    groups = x.reshape(-1, size)
    y = np.stack([_standardise(group, eps) for group in groups]).reshape(x.shape)
    if weight is not None:
        y = y * weight
    if bias is not None:
        y = y + bias
    return y


@st.composite
def rms_norm_case(draw):
    """x of 1 to 3 dimensions with rows whose mean square is not tiny, maybe a weight, eps."""
    x = draw(arrays(st.lists(st.integers(1, 4), min_size=1, max_size=3).map(tuple)))
    arrays_ = (x,)
    if draw(st.booleans()):
        arrays_ += (draw(arrays((x.shape[-1],), low=-2.0, high=2.0)),)
    return Case(arrays_, {"eps": draw(st.sampled_from([1e-6, 1e-5, 0.1]))})


def _rows_not_tiny(case):
    x = case.arrays[0]
    return bool(np.all(np.mean(x.reshape(-1, x.shape[-1]) ** 2, axis=1) >= MIN_VARIANCE))


def _rms_norm(x, weight=None, eps=1e-6):
    return F.rms_norm(x, weight, eps)


def rms_norm_reference(x, weight=None, eps=1e-6):
    rows = x.reshape(-1, x.shape[-1])
    y = np.stack([row / np.sqrt(np.mean(row * row) + eps) for row in rows]).reshape(x.shape)
    return y if weight is None else y * weight


SPECS = [
    OpSpec("batch_norm", _batch_norm, batch_norm_case().filter(_channels_spread), batch_norm_output_reference,
           differentiable=[0, 3, 4], max_examples=12),
    # the running statistics are updated outside the graph: forward only
    OpSpec("batch_norm", _batch_norm_with_statistics, batch_norm_case(), batch_norm_reference, differentiable=()),
    OpSpec("layer_norm", _layer_norm, layer_norm_case().filter(_groups_spread), layer_norm_reference,
           max_examples=12),
    OpSpec("rms_norm", _rms_norm, rms_norm_case().filter(_rows_not_tiny), rms_norm_reference, max_examples=12),
]
