"""Version counters (tinydl/versions.py) and the in-place methods (tinydl/inplace.py).

An in-place change of a value that a Function saved for backward must make backward raise (PyTorch's rule);
an in-place change of a value that no backward reads must not; in-place ops recorded in a graph must give the
gradients PyTorch gives.
"""
import numpy as np
import pytest

import tinydl
import tinydl.functional as F
from tinydl import nn, optim

MODIFIED = "modified by an in-place operation"


def data(*shape, seed=0):
    return tinydl.Tensor(np.random.default_rng(seed).standard_normal(shape).astype(np.float32))


# ----------------------------------------------------------------------------------- the example
def test_optimizer_step_between_forward_and_backward_raises_naming_the_parameter():
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    optimizer = optim.SGD(model.parameters(), lr=0.1)
    loss = model(data(5, 3)).sum()
    saved = model[2].weight._version             # nn.init already wrote it once
    loss.backward(retain_graph=True)
    optimizer.step()  # updates the weights the graph saved
    with pytest.raises(RuntimeError, match=MODIFIED) as info:
        loss.backward()
    message = str(info.value)
    for expected in ("'2.weight'", "linear", f"saved at version {saved}, now at version {saved + 1}",
                     "optimizer.step()", "clone()"):
        assert expected in message, (expected, message)


def test_step_after_backward_is_the_fix():
    model = nn.Linear(3, 2)
    optimizer = optim.Adam(model.parameters(), lr=0.1)
    start = model.weight._version
    for _ in range(2):
        optimizer.zero_grad()
        model(data(4, 3)).sum().backward()
        optimizer.step()
    assert model.weight._version == start + 2


# ---------------------------------------------------------------------- each in-place method on a saved tensor
METHODS = {
    "add_": lambda t: t.add_(1.0),
    "sub_": lambda t: t.sub_(data(3), alpha=2),
    "mul_": lambda t: t.mul_(2.0),
    "div_": lambda t: t.div_(2.0),
    "zero_": lambda t: t.zero_(),
    "copy_": lambda t: t.copy_(data(3, seed=1)),
    "fill_": lambda t: t.fill_(0.5),
    "clamp_": lambda t: t.clamp_(-0.1, 0.1),
    "setitem": lambda t: t.__setitem__(0, 7.0),
}


@pytest.mark.parametrize("method", METHODS)
def test_in_place_change_of_a_saved_input_raises(method):
    x = data(3)                                  # saved by mul for the gradient of w
    w = tinydl.randn(3, requires_grad=True)
    loss = (w * x).sum()
    METHODS[method](x)
    assert x._version == 1
    with pytest.raises(RuntimeError, match=MODIFIED) as info:
        loss.backward()
    assert "input 1 of mul" in str(info.value)


@pytest.mark.parametrize("method", METHODS)
def test_in_place_change_of_a_saved_non_leaf_raises(method):
    w = tinydl.randn(3, requires_grad=True)
    hidden = w * 2
    loss = (hidden * hidden).sum()               # mul saves hidden
    METHODS[method](hidden)                      # recorded in the graph: hidden's creator is now the in-place op
    with pytest.raises(RuntimeError, match=MODIFIED):
        loss.backward()


def test_a_saved_output_changed_in_place_raises_naming_the_op():
    x = tinydl.randn(3, requires_grad=True)
    y = x.exp()                                  # exp's backward reads its output
    y.add_(1.0)
    with pytest.raises(RuntimeError, match=MODIFIED) as info:
        y.sum().backward()
    assert "its output of exp" in str(info.value)


@pytest.mark.parametrize("method", METHODS)
def test_no_error_when_no_backward_reads_the_changed_value(method):
    a, b = data(3), tinydl.randn(3, requires_grad=True)
    total = (a + b).sum()                        # add saves nothing
    METHODS[method](a)
    total.backward()
    np.testing.assert_array_equal(b.grad.numpy(), np.ones(3))


def test_retained_graph_after_step_raises_on_the_second_backward():
    w = nn.Parameter(tinydl.randn(3))
    loss = (w * w).sum()
    loss.backward(retain_graph=True)
    optim.SGD([w], lr=0.1).step()
    with pytest.raises(RuntimeError, match=MODIFIED):
        loss.backward()


def test_writing_into_data_is_the_untracked_escape_hatch():
    x, w = data(3), tinydl.randn(3, requires_grad=True)
    loss = (w * x).sum()
    x.data[...] = 2.0
    loss.backward()
    np.testing.assert_array_equal(w.grad.numpy(), np.full(3, 2.0, dtype=np.float32))


# ------------------------------------------------------------------------------------------------ views
@pytest.mark.parametrize("make_view", [lambda x: x.T, lambda x: x[0], lambda x: x.reshape(6), lambda x: x.detach(),
                                       lambda x: F.split(x, 1, 0)[1], lambda x: x.unsqueeze(0)],
                         ids=["transpose", "getitem", "reshape", "detach", "split", "unsqueeze"])
def test_a_view_shares_the_version_counter_of_its_base(make_view):
    x = data(2, 3)
    w = tinydl.randn(2, 3, requires_grad=True)
    loss = (w * x).sum()
    view = make_view(x)
    view.mul_(2.0)                               # writes into x's memory
    assert x._version == 1 and view._version == 1
    with pytest.raises(RuntimeError, match=MODIFIED):
        loss.backward()


def test_changing_the_base_is_seen_through_a_saved_view():
    x = data(2, 3)
    w = tinydl.randn(3, requires_grad=True)
    loss = (w * x[1]).sum()                      # mul saved the view x[1]
    x.fill_(0.0)
    with pytest.raises(RuntimeError, match=MODIFIED):
        loss.backward()


def test_a_copy_made_by_reshape_or_advanced_indexing_has_its_own_counter():
    x = data(2, 3)
    copy = x[[0, 1]]                             # advanced indexing copies
    copy.mul_(2.0)
    assert x._version == 0 and copy._version == 1


def test_in_place_on_a_view_taking_part_in_a_graph_is_refused():
    x = tinydl.randn(2, 3, requires_grad=True) * 1.0
    row = x[0]
    with pytest.raises(RuntimeError, match="shares memory with a view"):
        row.mul_(2.0)
    with pytest.raises(RuntimeError, match="shares memory with a view"):
        x.add_(1.0)                              # row's recorded history (x[0]) would go stale
    x.clone().add_(1.0)                          # the fix the message gives


# ------------------------------------------------------------------------------------------- leaves
def test_a_leaf_that_requires_grad_is_refused_outside_no_grad_and_updated_inside():
    w = nn.Parameter(tinydl.zeros(3))
    for method in METHODS:
        with pytest.raises(RuntimeError, match="in-place op while recording the graph.*no_grad"):
            METHODS[method](w)
    assert w._version == 0
    with tinydl.no_grad():
        w.add_(1.0)
        w[2] = 5.0
    assert w.tolist() == [1.0, 1.0, 5.0] and w._version == 2


def test_the_refusal_names_the_parameter():
    model = nn.Sequential(nn.Linear(2, 2))
    with pytest.raises(RuntimeError, match=r"mul_: parameter '0\.weight'"):
        model[0].weight.mul_(2.0)


# ------------------------------------------------------------------------- in-place ops in a graph: gradients
def test_in_place_ops_recorded_in_the_graph_give_pytorch_gradients():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    values = {name: rng.standard_normal(shape) for name, shape in
              [("x", (3, 4)), ("w", (4,)), ("b", (3, 1)), ("s", ()), ("src", (4,)), ("v", ())]}

    def run(lib, tensor, clone):
        leaves = {name: tensor(value) for name, value in values.items()}
        y = leaves["x"] * 1.5                    # a non-leaf
        y.mul_(leaves["w"])
        y.add_(leaves["b"], alpha=2.0)
        y.sub_(leaves["s"])
        y.div_(leaves["w"] + 3.0)
        y.clamp_(-1.0, 1.0)
        y[1] = leaves["s"] * 2.0
        y[0, :2] = 0.0
        z = clone(y)
        z.copy_(leaves["src"])                   # z's old values get no gradient; src gets z's
        u = clone(y[2])
        u.fill_(leaves["v"])
        loss = (y * y).sum() + (z * y).sum() + (u * u).sum()
        loss.backward()
        return {name: leaf.grad for name, leaf in leaves.items()}

    ours = run(tinydl, lambda a: tinydl.tensor(a, requires_grad=True), lambda t: t.clone())
    theirs = run(torch, lambda a: torch.tensor(a, requires_grad=True), lambda t: t.clone())
    for name in values:
        np.testing.assert_allclose(ours[name].numpy(), theirs[name].numpy(), rtol=1e-10, atol=1e-12,
                                   err_msg=name)


def test_in_place_ops_outside_a_graph_match_numpy():
    x = tinydl.tensor([[1.0, -2.0], [3.0, 4.0]])
    x.add_(1.0).mul_(2.0).sub_(tinydl.tensor([1.0, 1.0]), alpha=0.5).div_(4.0).clamp_(max=2.0)
    expected = np.minimum(((np.array([[1.0, -2.0], [3.0, 4.0]]) + 1) * 2 - 0.5) / 4, 2.0)
    np.testing.assert_allclose(x.numpy(), expected)
    assert x._version == 5
    x.copy_(np.array([5.0, 6.0]))
    assert x.tolist() == [[5.0, 6.0], [5.0, 6.0]]


def test_in_place_ops_refuse_what_they_cannot_store():
    with pytest.raises(TypeError, match="add_.*float32.*int64"):
        tinydl.tensor([1, 2]).add_(0.5)
    with pytest.raises(ValueError, match=r"add_.*\(2, 3\).*\(3,\)"):
        data(3).add_(data(2, 3))
    with pytest.raises(RuntimeError, match="mul_.*read-only.*clone"):
        data(3).expand(2, 3).mul_(2.0)


# --------------------------------------------------------------------- other in-place writers bump versions
def test_load_state_dict_init_and_module_to_bump_versions():
    layer = nn.Linear(3, 2)
    before = layer.weight._version
    nn.init.zeros_(layer.weight)
    assert layer.weight._version == before + 1
    layer.load_state_dict({k: v.clone() for k, v in layer.state_dict().items()})
    assert layer.weight._version == before + 2
    loss = layer(data(4, 3)).sum()
    layer.double()
    assert layer.weight._version == before + 3
    with pytest.raises(RuntimeError, match=MODIFIED):
        loss.backward()


def test_batch_norm_running_statistics_are_bumped_in_training():
    norm = nn.BatchNorm2d(2)
    norm(data(4, 2, 3, 3))
    assert norm.running_mean._version == 1 and norm.num_batches_tracked._version == 1


def test_parameter_names_are_dotted_from_the_outermost_module():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(nn.Linear(2, 2), nn.Tanh())
            self.head = nn.Linear(2, 1)
    net = Net()
    assert {name: p._name for name, p in net.named_parameters()} == {
        name: name for name, _ in net.named_parameters()}


def test_in_place_ops_in_a_graph_pass_gradcheck_and_gradgradcheck():
    from tinydl.gradcheck import gradcheck, gradgradcheck
    rng = np.random.default_rng(5)
    inputs = tuple(tinydl.tensor(rng.standard_normal(shape), requires_grad=True)
                   for shape in [(3, 4), (4,), (3, 1), ()])

    def f(x, w, b, s):
        y = x * 1.0
        y.mul_(w)
        y.add_(b, alpha=-0.5)
        y.div_(w * w + 1.0)
        y.clamp_(-0.8, 0.8)
        y[1] = s * 3.0
        z = y.clone()
        z[:, 0] = b[:, 0]
        z.sub_(s)
        return (y * z).sum(1)

    assert gradcheck(f, inputs)
    assert gradgradcheck(f, inputs)
