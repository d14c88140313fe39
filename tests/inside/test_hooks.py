"""Tensor and Module hooks with PyTorch's signatures, checked against PyTorch itself on the same computation."""
import numpy as np
import pytest

import tinydl
import tinydl.functional as F
from tinydl import nn

torch = pytest.importorskip("torch")


def pair(values, **kw):
    array = np.asarray(values, dtype=np.float64)
    return tinydl.tensor(array, requires_grad=True), torch.tensor(array, requires_grad=True)


def test_tensor_hook_sees_the_summed_gradient_and_can_replace_it_like_pytorch():
    (x, tx) = pair([1.0, -2.0, 3.0])
    seen, tseen = [], []
    for lib, leaf, store in ((tinydl, x, seen), (torch, tx, tseen)):
        y = leaf * 3
        y.register_hook(lambda g, store=store: store.append(g.detach().numpy().copy()))
        z = (y * y).sum() + y.sum()  # two consumers: the hook sees their sum
        y.register_hook(lambda g: g * 2)
        z.backward()
    np.testing.assert_allclose(seen[0], tseen[0])
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy())


def test_leaf_hook_runs_once_before_accumulation_and_handle_removes_it():
    x, tx = pair([[1.0, 2.0], [3.0, 4.0]])
    calls = []
    handle = x.register_hook(lambda g: calls.append(g.numpy().copy()) or g * 0.5)
    thandle = tx.register_hook(lambda g: g * 0.5)
    (x * x + x).sum().backward()
    (tx * tx + tx).sum().backward()
    assert len(calls) == 1
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy())
    handle.remove()
    thandle.remove()
    (x * 2).sum().backward()
    (tx * 2).sum().backward()
    assert len(calls) == 1
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy())


def test_retain_grad_keeps_a_non_leaf_gradient():
    x, tx = pair([0.5, -1.5])
    for leaf in (x, tx):
        h = leaf.tanh() if leaf is tx else F.tanh(leaf)
        h.retain_grad()
        h.retain_grad()  # twice is once
        (h * h * 4).sum().backward()
        result = h.grad.detach().numpy()
        if leaf is x:
            ours = result
    np.testing.assert_allclose(ours, result)


def test_hook_errors_name_the_tensor_and_what_was_expected():
    x = tinydl.tensor(np.ones((2, 3), np.float32), requires_grad=True)
    y = x * 2
    y.register_hook(lambda g: g.sum(0))
    with pytest.raises(RuntimeError, match=r"shape \(3,\) float32; expected shape \(2, 3\) and dtype float32") as e:
        y.sum().backward()
    assert "grad_fn=mul" in str(e.value)
    z = x * 2
    z.register_hook(lambda g: g.double())
    with pytest.raises(RuntimeError, match="float64; expected shape \\(2, 3\\) and dtype float32"):
        z.sum().backward()
    with pytest.raises(RuntimeError, match=r"tensor of shape \(2,\) float32 \(leaf\) that does not require grad"):
        tinydl.zeros(2).register_hook(lambda g: g)


def twin_blocks():
    tinydl.manual_seed(0)
    ours = nn.Linear(3, 2)
    theirs = torch.nn.Linear(3, 2).double()
    ours.double()
    with torch.no_grad():
        theirs.weight.copy_(torch.tensor(ours.weight.numpy()))
        theirs.bias.copy_(torch.tensor(ours.bias.numpy()))
    return ours, theirs


def test_forward_pre_and_forward_hooks_can_rewrite_args_and_output_like_pytorch():
    ours, theirs = twin_blocks()
    results = []
    for module, lib in ((ours, tinydl), (theirs, torch)):
        order = []
        pre = module.register_forward_pre_hook(lambda m, args: order.append("pre") or (args[0] * 2,))
        post = module.register_forward_hook(lambda m, args, out: order.append("post") or out + 1)
        x = lib.tensor(np.arange(6.0).reshape(2, 3))
        results.append((module(x).detach().numpy(), order))
        pre.remove()
        post.remove()
        results.append(module(x).detach().numpy())
    np.testing.assert_allclose(results[0][0], results[2][0])
    assert results[0][1] == results[2][1] == ["pre", "post"]
    np.testing.assert_allclose(results[1], results[3])


def test_full_backward_hook_gets_grad_input_and_grad_output_and_can_replace_grad_input():
    ours, theirs = twin_blocks()
    got = {}
    for module, lib, key in ((ours, tinydl, "ours"), (theirs, torch, "theirs")):
        def hook(m, grad_input, grad_output, key=key):
            got[key] = ([None if g is None else g.detach().numpy().copy() for g in grad_input],
                        [g.detach().numpy().copy() for g in grad_output])
            return tuple(None if g is None else g * 10 for g in grad_input)
        handle = module.register_full_backward_hook(hook)
        x = lib.tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
        (module(x) ** 2).sum().backward()
        got[key + "_x"] = x.grad.numpy().copy()
        handle.remove()
    for a, b in zip(got["ours"][0] + got["ours"][1], got["theirs"][0] + got["theirs"][1]):
        np.testing.assert_allclose(a, b)
    np.testing.assert_allclose(got["ours_x"], got["theirs_x"])


def test_full_backward_hook_on_a_first_layer_reports_none_for_the_data_input():
    ours, _ = twin_blocks()
    got = []
    ours.register_full_backward_hook(lambda m, gi, go: got.append((gi, [g.shape for g in go])))
    ours(tinydl.ones(4, 3, dtype=tinydl.float64)).sum().backward()
    assert got == [((None,), [(4, 2)])]
    assert ours.weight.grad is not None


class TwoOutputs(nn.Module):
    def forward(self, x):
        return (x * 2, None, x.sum())


def test_full_backward_hook_routes_only_the_tensor_outputs():
    module = TwoOutputs()
    got = []
    module.register_full_backward_hook(lambda m, gi, go: got.append(([g.shape for g in gi], [g.shape for g in go])))
    x = tinydl.ones(3, requires_grad=True)
    doubled, nothing, total = module(x)
    assert nothing is None
    (doubled.sum() + total).backward()
    assert got == [([(3,)], [(3,), ()])]
    np.testing.assert_allclose(x.grad.numpy(), [3.0, 3.0, 3.0])


@pytest.mark.gpu
def test_leaf_hooks_run_on_the_leafs_gpu():
    if not tinydl.is_available("cuda"):
        pytest.skip("needs CuPy (or its double)")
    device = "cuda:1" if tinydl.cuda.device_count() > 1 else "cuda"
    x = tinydl.tensor(np.array([1.0, 2.0], np.float32), device=device, requires_grad=True)
    x.register_hook(lambda g: g * 3)
    (x * x).sum().backward()
    assert str(x.grad.device) == str(x.device)
    np.testing.assert_allclose(x.grad.cpu().numpy(), [6.0, 12.0])
