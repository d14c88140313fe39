"""Comparing an op with its PyTorch counterpart: forward, first and second derivatives (tests only)."""
import numpy as np
import torch

import tinydl


def tensors(*arrays, requires_grad=True):
    """The same float arrays as a tinydl and a torch tensor, both requiring grad."""
    return ([tinydl.Tensor(a.copy(), requires_grad=requires_grad) for a in arrays],
            [torch.tensor(a, requires_grad=requires_grad) for a in arrays])


def compare(ours, theirs, rtol=1e-10, atol=1e-12):
    np.testing.assert_allclose(ours.detach().numpy(), theirs.detach().numpy(), rtol=rtol, atol=atol)


def check_against_torch(rng, ours_fn, torch_fn, inputs, rtol=1e-10, atol=1e-12):
    """Forward; first derivatives for a random upstream gradient g; and second derivatives: the gradient of
    <grad, u> (u random) with respect to every input and to g itself."""
    (mine, theirs) = tensors(*inputs)
    out, ref = ours_fn(*mine), torch_fn(*theirs)
    compare(out, ref, rtol, atol)
    (upstream,), (ref_upstream,) = tensors(rng.standard_normal(ref.shape))
    grads = tinydl.grad(out, mine, upstream, create_graph=True)
    ref_grads = torch.autograd.grad(ref, theirs, ref_upstream, create_graph=True)
    for g, r in zip(grads, ref_grads):
        compare(g, r, rtol, atol)
    directions = [rng.standard_normal(a.shape) for a in inputs]
    inner = sum((g * tinydl.Tensor(d)).sum() for g, d in zip(grads, directions))
    ref_inner = sum((r * torch.tensor(d)).sum() for r, d in zip(ref_grads, directions))
    second = tinydl.grad(inner, mine + [upstream], allow_unused=True)
    ref_second = torch.autograd.grad(ref_inner, theirs + [ref_upstream], allow_unused=True)
    for s, r in zip(second, ref_second):
        if s is None or r is None:
            assert all(not t.numpy().any() for t in (s, r) if t is not None)
        else:
            compare(s, r, rtol * 10, atol * 10)
