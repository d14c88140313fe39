"""clip_grad_norm_ against PyTorch's."""
import numpy as np
import pytest

import tinydl
from tinydl import nn
from tinydl.nn.utils import clip_grad_norm_

torch = pytest.importorskip("torch")


@pytest.mark.parametrize("max_norm", [0.5, 1e3])
@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, float("inf")])
def test_clip_grad_norm_matches_pytorch(max_norm, norm_type):
    rng = np.random.default_rng(0)
    grads = [rng.standard_normal(shape) for shape in [(4, 3), (5,), (2, 2, 2)]]
    ours = [nn.Parameter(tinydl.zeros(g.shape, dtype=tinydl.float64)) for g in grads]
    theirs = [torch.nn.Parameter(torch.zeros(g.shape, dtype=torch.float64)) for g in grads]
    for a, b, g in zip(ours, theirs, grads):
        a.grad, b.grad = tinydl.tensor(g), torch.tensor(g)
    ours.append(nn.Parameter(tinydl.zeros(3, dtype=tinydl.float64)))  # no gradient: ignored
    total = clip_grad_norm_(ours, max_norm, norm_type)
    expected = torch.nn.utils.clip_grad_norm_(theirs, max_norm, norm_type)
    assert total.item() == pytest.approx(expected.item(), rel=1e-12)
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-12)
    assert ours[-1].grad is None


def test_clipped_norm_is_max_norm_and_dtype_is_kept():
    param = nn.Parameter(tinydl.zeros(10))
    param.grad = tinydl.full((10,), 3.0)
    clip_grad_norm_(param, 1.0)
    assert param.grad.dtype == np.float32
    assert float(np.linalg.norm(param.grad.numpy())) == pytest.approx(1.0, rel=1e-5)


def test_nonfinite_norm_is_an_error_when_asked():
    param = nn.Parameter(tinydl.zeros(2))
    param.grad = tinydl.tensor([np.inf, 1.0])
    with pytest.raises(RuntimeError, match="norm of the gradients is inf"):
        clip_grad_norm_([param], 1.0, error_if_nonfinite=True)


def test_bad_arguments():
    with pytest.raises(ValueError, match="max_norm must be non-negative"):
        clip_grad_norm_([], -1.0)
    with pytest.raises(ValueError, match="norm_type must be positive"):
        clip_grad_norm_([], 1.0, norm_type=0)
    assert clip_grad_norm_([nn.Parameter(tinydl.zeros(2))], 1.0).item() == 0.0
