"""Helpers for comparing a tinydl module with its PyTorch twin (same weights, same input, same upstream
gradient): outputs, input gradients, parameter gradients and buffers must agree."""
from __future__ import annotations

import numpy as np
import pytest

import tinydl
import tinydl.functional as F

torch = pytest.importorskip("torch")
torch.set_num_threads(1)  # the oracle's speed does not matter, and its threads would fight over the shared cores


def requires(*names: str):
    """Skip a test until the functional ops it needs exist (they are written by other engineers)."""
    missing = [name for name in names if not hasattr(F, name)]
    return pytest.mark.skipif(bool(missing), reason=f"tinydl.functional.{', '.join(missing)} not available yet")


def copy_weights(ours, theirs) -> None:
    """Load the PyTorch module's state dict, as NumPy arrays, into the tinydl module (strict)."""
    ours.load_state_dict({key: value.detach().cpu().numpy() for key, value in theirs.state_dict().items()})


def assert_matches(ours, theirs, *inputs: np.ndarray, rtol: float = 1e-10, atol: float = 1e-12,
                   seed: int = 0, backward: bool = True) -> None:
    """Run both modules on the same float64 inputs and compare outputs, then backpropagate one random upstream
    gradient through both and compare every floating input's gradient and every parameter's gradient."""
    ours_inputs = [tinydl.tensor(x, requires_grad=x.dtype.kind == "f" and backward) for x in inputs]
    their_inputs = [torch.tensor(x, requires_grad=x.dtype.kind == "f" and backward) for x in inputs]
    ours_out, their_out = ours(*ours_inputs), theirs(*their_inputs)
    np.testing.assert_allclose(ours_out.detach().numpy(), their_out.detach().numpy(), rtol=rtol, atol=atol,
                               err_msg="forward")
    for (name, buffer), (_, their_buffer) in zip(ours.named_buffers(), theirs.named_buffers()):
        np.testing.assert_allclose(buffer.numpy(), their_buffer.numpy(), rtol=rtol, atol=atol, err_msg=name)
    if not backward:
        return
    upstream = np.random.default_rng(seed).standard_normal(their_out.shape)
    their_out.backward(torch.tensor(upstream, dtype=their_out.dtype))
    ours_out.backward(tinydl.tensor(upstream, dtype=ours_out.dtype))
    for position, (mine, theirs_x) in enumerate(zip(ours_inputs, their_inputs)):
        if theirs_x.requires_grad:
            np.testing.assert_allclose(mine.grad.numpy(), theirs_x.grad.numpy(), rtol=rtol, atol=atol,
                                       err_msg=f"gradient of input {position}")
    their_params = dict(theirs.named_parameters())
    for name, param in ours.named_parameters():
        np.testing.assert_allclose(param.grad.numpy(), their_params[name].grad.numpy(), rtol=rtol, atol=atol,
                                   err_msg=f"gradient of {name}")
