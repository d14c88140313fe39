"""Catalogue entries for the losses; each reference is a plain loop over samples in float64 NumPy."""
import numpy as np
from hypothesis import strategies as st

import tinydl.functional as F
from tinydl.testing import Case, OpSpec, arrays

REDUCTIONS = st.sampled_from(["none", "sum", "mean"])


@st.composite
def logits_shapes(draw, max_inner_dims=2):
    """(N, C) or (N, C, d1, ...) with small sides; C >= 1."""
    batch, classes = draw(st.integers(1, 4)), draw(st.integers(1, 5))
    inner = draw(st.lists(st.integers(1, 3), max_size=max_inner_dims))
    return (batch, classes, *inner)


@st.composite
def class_index_case(draw, smoothing=True, low=-3.0, high=3.0):
    """Logits, integer targets (some set to ignore_index), maybe class weights, a reduction, maybe smoothing."""
    shape = draw(logits_shapes())
    classes = shape[1]
    x = draw(arrays(shape, low=low, high=high))
    target = np.array(draw(st.lists(st.integers(0, classes - 1), min_size=x.size // classes,
                                    max_size=x.size // classes)), dtype=np.int64).reshape(shape[:1] + shape[2:])
    ignore_index = draw(st.sampled_from([-100, 0]))
    ignored = np.array(draw(st.lists(st.booleans(), min_size=target.size, max_size=target.size)))
    target.reshape(-1)[ignored] = ignore_index
    kwargs = {"ignore_index": ignore_index, "reduction": draw(REDUCTIONS)}
    if smoothing:
        kwargs["label_smoothing"] = draw(st.one_of(st.just(0.0), st.floats(0.0, 1.0)))
    arrays_ = (x, target)
    if draw(st.booleans()):
        arrays_ += (draw(arrays((classes,), low=0.2, high=2.0)),)
    return Case(arrays_, kwargs)


def mean_is_defined(case):
    """"mean" over targets that are all ignored is 0/0 (NaN, as in PyTorch): tested separately."""
    target, kwargs = case.arrays[1], case.kwargs
    return kwargs["reduction"] != "mean" or bool(np.any(target != kwargs["ignore_index"]))


def _log_softmax_row(logits):
    shifted = logits - logits.max()
    return shifted - np.log(np.sum(np.exp(shifted)))


def _samples(x):
    """The rows of class scores, one per sample, in the order of the flattened target."""
    return np.moveaxis(x, 1, -1).reshape(-1, x.shape[1])


def _reduce(losses, reduction, normaliser):
    if reduction == "none":
        return losses
    return losses.sum() / normaliser if reduction == "mean" else losses.sum()


def cross_entropy_reference(x, target, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
    classes = x.shape[1]
    weight = np.ones(classes) if weight is None else weight
    losses, normaliser = [], 0.0
    for logits, t in zip(_samples(x), target.reshape(-1)):
        if t == ignore_index:
            losses.append(0.0)
            continue
        log_p = _log_softmax_row(logits)
        smooth = -sum(weight[c] * log_p[c] for c in range(classes)) / classes
        losses.append((1 - label_smoothing) * -weight[t] * log_p[t] + label_smoothing * smooth)
        normaliser += weight[t]
    return _reduce(np.array(losses).reshape(target.shape), reduction, normaliser)


def nll_reference(x, target, weight=None, ignore_index=-100, reduction="mean"):
    weight = np.ones(x.shape[1]) if weight is None else weight
    losses, normaliser = [], 0.0
    for scores, t in zip(_samples(x), target.reshape(-1)):
        valid = t != ignore_index
        losses.append(-weight[t] * scores[t] if valid else 0.0)
        normaliser += weight[t] if valid else 0.0
    return _reduce(np.array(losses).reshape(target.shape), reduction, normaliser)


@st.composite
def probability_case(draw):
    shape = draw(logits_shapes(max_inner_dims=1))
    x = draw(arrays(shape))
    scores = draw(arrays(shape))
    target = np.exp(scores) / np.exp(scores).sum(axis=1, keepdims=True)
    kwargs = {"reduction": draw(REDUCTIONS), "label_smoothing": draw(st.sampled_from([0.0, 0.25]))}
    arrays_ = (x, target)
    if draw(st.booleans()):
        arrays_ += (draw(arrays((shape[1],), low=0.2, high=2.0)),)
    return Case(arrays_, kwargs)


def probability_reference(x, target, weight=None, reduction="mean", label_smoothing=0.0):
    classes = x.shape[1]
    weight = np.ones(classes) if weight is None else weight
    smoothed = _samples(target) * (1 - label_smoothing) + label_smoothing / classes
    losses = [-np.sum(weight * q * _log_softmax_row(logits)) for logits, q in zip(_samples(x), smoothed)]
    losses = np.array(losses).reshape(x.shape[:1] + x.shape[2:])
    return _reduce(losses, reduction, losses.size)


@st.composite
def pair_case(draw, target_low=-3.0, target_high=3.0):
    x = draw(arrays())
    return Case((x, draw(arrays(x.shape, low=target_low, high=target_high))), {"reduction": draw(REDUCTIONS)})


def mse_reference(x, target, reduction="mean"):
    squares = np.array([(a - b) ** 2 for a, b in zip(x.reshape(-1), target.reshape(-1))]).reshape(x.shape)
    return _reduce(squares, reduction, squares.size)


@st.composite
def bce_case(draw):
    """Logits, probabilities as targets, then maybe a weight (input's shape) and a pos_weight (last dim)."""
    x = draw(arrays(low=-4.0, high=4.0))
    arrays_ = (x, draw(arrays(x.shape, low=0.0, high=1.0)))
    extras = draw(st.integers(0, 2))
    if extras >= 1:
        arrays_ += (draw(arrays(x.shape, low=0.2, high=2.0)),)
    if extras == 2:
        arrays_ += (draw(arrays(x.shape[-1:], low=0.2, high=3.0)),)
    return Case(arrays_, {"reduction": draw(REDUCTIONS)})


def _bce(x, target, weight=None, pos_weight=None, reduction="mean"):
    return F.binary_cross_entropy_with_logits(x, target, weight, reduction=reduction, pos_weight=pos_weight)


def bce_reference(x, target, weight=None, pos_weight=None, reduction="mean"):
    weight = np.ones_like(x) if weight is None else weight
    pos_weight = np.ones_like(x) if pos_weight is None else np.broadcast_to(pos_weight, x.shape)
    losses = []
    for logit, t, w, pw in zip(x.reshape(-1), target.reshape(-1), weight.reshape(-1), pos_weight.reshape(-1)):
        p = 1 / (1 + np.exp(-logit))
        losses.append(-w * (pw * t * np.log(p) + (1 - t) * np.log(1 - p)))
    return _reduce(np.array(losses).reshape(x.shape), reduction, x.size)


SPECS = [
    OpSpec("cross_entropy", F.cross_entropy, class_index_case().filter(mean_is_defined), cross_entropy_reference, differentiable=[0],
           max_examples=12),
    # logits of +-1e4: the loss stays finite and exact (forward only; the gradient is tested in test_loss.py)
    OpSpec("cross_entropy", F.cross_entropy, class_index_case(low=-1e4, high=1e4).filter(mean_is_defined), cross_entropy_reference,
           differentiable=(), float32_rtol=1e-4, float32_atol=1e-2),
    OpSpec("cross_entropy", F.cross_entropy, probability_case(), probability_reference),
    OpSpec("nll_loss", F.nll_loss, class_index_case(smoothing=False).filter(mean_is_defined), nll_reference, differentiable=[0]),
    OpSpec("mse_loss", F.mse_loss, pair_case(), mse_reference),
    OpSpec("binary_cross_entropy_with_logits", _bce, bce_case(), bce_reference),
]
