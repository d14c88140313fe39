"""SGD, Adam and AdamW against PyTorch (same initial parameters, same gradients, several steps), state dicts
that round-trip through tinydl.save, and argument checking."""
import numpy as np
import pytest

import tinydl
from tinydl import nn, optim
from tinydl.optim.optimizer import CPU_BLOCK

torch = pytest.importorskip("torch")

# shapes: a matrix, a vector, a 0-d scalar (a learned temperature), and one larger than a CPU block (so the
# blocked update path runs)
SHAPES = [(7, 5), (3,), (), (CPU_BLOCK + 1000,)]

CONFIGS = [
    pytest.param("SGD", dict(lr=0.1), id="sgd"),
    pytest.param("SGD", dict(lr=0.05, momentum=0.9), id="sgd-momentum"),
    pytest.param("SGD", dict(lr=0.05, momentum=0.9, dampening=0.3, weight_decay=0.01), id="sgd-dampening-decay"),
    pytest.param("SGD", dict(lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.1), id="sgd-nesterov"),
    pytest.param("SGD", dict(lr=0.05, momentum=0.5, maximize=True), id="sgd-maximize"),
    pytest.param("Adam", dict(lr=0.01), id="adam"),
    pytest.param("Adam", dict(lr=0.02, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1), id="adam-l2"),
    pytest.param("Adam", dict(lr=0.01, amsgrad=True, maximize=True), id="adam-amsgrad-maximize"),
    pytest.param("AdamW", dict(lr=0.01), id="adamw"),
    pytest.param("AdamW", dict(lr=0.03, weight_decay=0.5, amsgrad=True), id="adamw-amsgrad"),
]


def make_problem(dtype, seed=0, steps=5):
    rng = np.random.default_rng(seed)
    initial = [rng.standard_normal(shape).astype(dtype) for shape in SHAPES]
    grads = [[rng.standard_normal(shape).astype(dtype) for shape in SHAPES] for _ in range(steps)]
    return initial, grads


def run_torch(name, options, initial, grads):
    params = [torch.nn.Parameter(torch.tensor(array)) for array in initial]
    optimizer = getattr(torch.optim, name)(params, **options)
    for step_grads in grads:
        for param, grad in zip(params, step_grads):
            param.grad = torch.tensor(grad)
        optimizer.step()
    return [param.detach().numpy() for param in params]


def run_tinydl(name, options, initial, grads, params=None):
    params = params or [nn.Parameter(array.copy()) for array in initial]
    optimizer = getattr(optim, name)(params, **options)
    for step_grads in grads:
        for param, grad in zip(params, step_grads):
            param.grad = tinydl.Tensor(grad.copy())
        optimizer.step()
    return [param.detach().numpy() for param in params], optimizer


@pytest.mark.parametrize("name, options", CONFIGS)
@pytest.mark.parametrize("dtype, rtol, atol", [(np.float64, 1e-12, 1e-14), (np.float32, 1e-6, 1e-6)])
def test_optimizer_matches_pytorch(name, options, dtype, rtol, atol):
    initial, grads = make_problem(dtype)
    expected = run_torch(name, options, initial, grads)
    actual, _ = run_tinydl(name, options, initial, grads)
    for ours, theirs in zip(actual, expected):
        assert ours.dtype == dtype
        np.testing.assert_allclose(ours, theirs, rtol=rtol, atol=atol)


@pytest.mark.parametrize("name, options", [("SGD", dict(lr=0.1, momentum=0.9, nesterov=True)),
                                           ("Adam", dict(lr=0.01, weight_decay=0.1))])
def test_non_contiguous_parameters_are_updated_in_place(name, options):
    initial, grads = make_problem(np.float64)
    base = np.asfortranarray(initial[0])  # a column-major parameter: not C-contiguous
    params = [nn.Parameter(base)] + [nn.Parameter(array.copy()) for array in initial[1:]]
    actual, _ = run_tinydl(name, options, initial, grads, params)
    assert params[0].data is base
    expected = run_torch(name, options, initial, grads)
    for ours, theirs in zip(actual, expected):
        np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-14)


def test_parameter_groups_have_their_own_options_and_parameters_without_gradients_are_left_alone():
    initial, grads = make_problem(np.float64, steps=3)
    mine = [nn.Parameter(array.copy()) for array in initial]
    theirs = [torch.nn.Parameter(torch.tensor(array)) for array in initial]
    ours_opt = optim.SGD([{"params": mine[:1], "lr": 0.5}, {"params": mine[1:2]}, {"params": mine[2:]}],
                         lr=0.1, momentum=0.9)
    their_opt = torch.optim.SGD([{"params": theirs[:1], "lr": 0.5}, {"params": theirs[1:2]},
                                 {"params": theirs[2:]}], lr=0.1, momentum=0.9)
    for step_grads in grads:
        for a, b, grad in zip(mine[:2], theirs[:2], step_grads):  # the third parameter never gets a gradient
            a.grad, b.grad = tinydl.Tensor(grad.copy()), torch.tensor(grad)
        ours_opt.step(), their_opt.step()
    for a, b in zip(mine, theirs):
        np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), rtol=1e-12)
    np.testing.assert_array_equal(mine[2].detach().numpy(), initial[2])
    assert ours_opt.param_groups[0]["lr"] == 0.5 and ours_opt.param_groups[1]["lr"] == 0.1


def test_zero_grad_and_closure():
    weight = nn.Parameter(tinydl.tensor([1.0, -2.0]))
    optimizer = optim.SGD([weight], lr=0.1)

    def closure():
        optimizer.zero_grad()
        loss = (weight * weight).sum()
        loss.backward()
        return loss
    assert optimizer.step(closure).item() == pytest.approx(5.0)
    np.testing.assert_allclose(weight.detach().numpy(), [0.8, -1.6], rtol=1e-6)  # w - 0.1 * 2w
    optimizer.zero_grad(set_to_none=False)
    assert weight.grad is not None and not weight.grad.numpy().any()
    optimizer.zero_grad()
    assert weight.grad is None


@pytest.mark.parametrize("name, options", [("SGD", dict(lr=0.05, momentum=0.9)),
                                           ("Adam", dict(lr=0.01, amsgrad=True)), ("AdamW", dict(lr=0.01))])
def test_state_dict_round_trips_through_save_and_resumes_exactly(name, options, tmp_path):
    initial, grads = make_problem(np.float32, steps=6)
    uninterrupted, _ = run_tinydl(name, options, initial, grads)
    params = [nn.Parameter(array.copy()) for array in initial]
    _, first = run_tinydl(name, options, initial, grads[:3], params)
    state = first.state_dict()
    numbers = list(range(len(SHAPES)))
    assert sorted(state) == ["param_groups", "state"] and sorted(state["state"]) == numbers
    assert state["param_groups"][0]["params"] == numbers
    tinydl.save({"optimizer": state, "params": [p.detach() for p in params]}, tmp_path / "opt.ckpt")

    loaded = tinydl.load(tmp_path / "opt.ckpt")
    fresh = [nn.Parameter(t.numpy().copy()) for t in loaded["params"]]
    resumed = getattr(optim, name)(fresh, **options)
    resumed.load_state_dict(loaded["optimizer"])
    for step_grads in grads[3:]:
        for param, grad in zip(fresh, step_grads):
            param.grad = tinydl.Tensor(grad.copy())
        resumed.step()
    for ours, expected in zip(fresh, uninterrupted):
        np.testing.assert_array_equal(ours.detach().numpy(), expected)


def test_state_dict_uses_pytorch_state_names():
    initial, grads = make_problem(np.float64, steps=1)
    _, adam = run_tinydl("Adam", dict(lr=0.01), initial, grads)
    torch_params = [torch.nn.Parameter(torch.tensor(a)) for a in initial]
    torch_adam = torch.optim.Adam(torch_params, lr=0.01)
    for param, grad in zip(torch_params, grads[0]):
        param.grad = torch.tensor(grad)
    torch_adam.step()
    ours, theirs = adam.state_dict(), torch_adam.state_dict()
    assert sorted(ours["state"][0]) == sorted(theirs["state"][0])
    assert set(ours["param_groups"][0]) <= set(theirs["param_groups"][0])


def test_loaded_state_lives_on_the_parameters_dtype_and_is_not_shared_with_the_dict():
    initial, grads = make_problem(np.float32, steps=1)
    _, adam = run_tinydl("Adam", dict(lr=0.01), initial, grads)
    state = adam.state_dict()
    state64 = {"state": {i: {k: (v.astype(np.float64) if hasattr(v, "astype") else v) for k, v in s.items()}
                         for i, s in state["state"].items()}, "param_groups": state["param_groups"]}
    params = [nn.Parameter(a.copy()) for a in initial]
    other = optim.Adam(params, lr=0.01)
    other.load_state_dict(state64)
    restored = other.state[params[0]]
    assert restored["exp_avg"].dtype == np.float32 and restored["step"] == 1
    assert restored["exp_avg"] is not state64["state"][0]["exp_avg"]


def test_load_state_dict_rejects_a_different_layout():
    a, b = nn.Parameter(tinydl.zeros(2)), nn.Parameter(tinydl.zeros(3))
    two_groups = optim.SGD([{"params": [a]}, {"params": [b]}], lr=0.1).state_dict()
    with pytest.raises(ValueError, match="state dict has 2 parameter groups, this optimizer 1"):
        optim.SGD([a, b], lr=0.1).load_state_dict(two_groups)
    with pytest.raises(ValueError, match="group 0 has 2 parameters in the state dict, 1 in this optimizer"):
        optim.SGD([a], lr=0.1).load_state_dict(optim.SGD([a, b], lr=0.1).state_dict())
    with pytest.raises(ValueError, match="keys 'state' and 'param_groups'"):
        optim.SGD([a], lr=0.1).load_state_dict({"state": {}})


@pytest.mark.parametrize("make, argument", [
    (lambda p: optim.SGD(p, lr=-0.1), "lr"),
    (lambda p: optim.SGD(p, lr=0.1, momentum=-0.5), "momentum"),
    (lambda p: optim.SGD(p, lr=0.1, weight_decay=-1.0), "weight_decay"),
    (lambda p: optim.SGD(p, lr=0.1, nesterov=True), "nesterov"),
    (lambda p: optim.SGD(p, lr=0.1, momentum=0.9, dampening=0.1, nesterov=True), "nesterov"),
    (lambda p: optim.Adam(p, lr=-1e-3), "lr"),
    (lambda p: optim.Adam(p, betas=(1.0, 0.999)), r"betas\[0\]"),
    (lambda p: optim.Adam(p, betas=(0.9, -0.1)), r"betas\[1\]"),
    (lambda p: optim.Adam(p, betas=(0.9,)), "betas"),
    (lambda p: optim.Adam(p, eps=-1e-8), "eps"),
    (lambda p: optim.AdamW(p, weight_decay=-0.01), "weight_decay"),
    (lambda p: optim.Adam([], lr=1e-3), "empty parameter list"),
    (lambda p: optim.Adam([{"params": []}]), "empty parameter list"),
    (lambda p: optim.SGD(p + p, lr=0.1), "more than once"),
])
def test_bad_arguments_raise_value_error_naming_the_argument(make, argument):
    with pytest.raises(ValueError, match=argument):
        make([nn.Parameter(tinydl.zeros(2))])


def test_non_tensor_and_non_leaf_parameters_are_refused():
    with pytest.raises(TypeError, match="single Tensor"):
        optim.SGD(nn.Parameter(tinydl.zeros(2)), lr=0.1)
    with pytest.raises(TypeError, match="can only optimize Tensors, got a ndarray"):
        optim.SGD([np.zeros(2)], lr=0.1)
    leaf = nn.Parameter(tinydl.zeros(2))
    with pytest.raises(ValueError, match="leaf"):
        optim.SGD([leaf * 2], lr=0.1)


def test_a_gradient_of_the_wrong_shape_is_named():
    param = nn.Parameter(tinydl.zeros(2, 3))
    param.grad = tinydl.zeros(3, 2)
    with pytest.raises(ValueError, match=r"gradient of shape \(3, 2\) .* parameter of shape \(2, 3\)"):
        optim.Adam([param]).step()


def test_broadcast_view_gradients_are_read_not_written():
    """A gradient may be a read-only broadcast view (the gradient of a sum); the step must not write into it."""
    param = nn.Parameter(tinydl.zeros(3, 4))
    param.sum().backward()
    grad_before = param.grad.numpy().copy()
    optim.SGD([param], lr=0.1, momentum=0.9, weight_decay=0.1).step()
    optim.Adam([param], lr=0.1, weight_decay=0.1).step()
    np.testing.assert_array_equal(param.grad.numpy(), grad_before)


def test_repr_lists_the_groups():
    text = repr(optim.SGD([nn.Parameter(tinydl.zeros(1))], lr=0.1, momentum=0.9))
    assert text.startswith("SGD (\nParameter Group 0\n") and "    lr: 0.1" in text and "    momentum: 0.9" in text
