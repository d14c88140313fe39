"""Module: registration, traversal, modes, device/dtype moves, state_dict and load_state_dict, repr."""
import copy

import numpy as np
import pytest

import tinydl
from tinydl import nn


class Block(nn.Module):
    """A module with a parameter, a buffer, a non-persistent buffer and a child, in a known order."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(tinydl.ones(3))
        self.register_buffer("count", tinydl.zeros((), dtype=tinydl.int64))
        self.register_buffer("cache", tinydl.zeros(2), persistent=False)
        self.inner = nn.Linear(3, 2)

    def forward(self, x):
        return self.inner(x * self.scale)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.block = Block()
        self.head = nn.Sequential(nn.ReLU(), nn.Linear(2, 1, bias=False))
        self.bias = nn.Parameter(tinydl.zeros(1))

    def forward(self, x):
        return self.head(self.block(x)) + self.bias


def test_attribute_assignment_registers_parameters_buffers_and_children():
    net = Net()
    assert list(net._parameters) == ["bias"]
    assert list(net._modules) == ["block", "head"]
    assert list(net.block._buffers) == ["count", "cache"]
    assert net.block.scale is net.block._parameters["scale"]
    assert isinstance(net.block.scale, tinydl.Tensor) and net.block.scale.requires_grad


def test_named_parameters_buffers_and_modules_use_dotted_names_in_registration_order():
    net = Net()
    assert [name for name, _ in net.named_parameters()] == [
        "bias", "block.scale", "block.inner.weight", "block.inner.bias", "head.1.weight"]
    assert [name for name, _ in net.named_buffers()] == ["block.count", "block.cache"]
    assert [name for name, _ in net.named_modules()] == ["", "block", "block.inner", "head", "head.0", "head.1"]
    assert [name for name, _ in net.named_children()] == ["block", "head"]
    assert len(list(net.parameters())) == 5 and len(list(net.modules())) == 6
    assert [name for name, _ in net.named_parameters(recurse=False)] == ["bias"]


def test_shared_parameters_and_modules_are_listed_once_but_saved_under_every_name():
    shared = nn.Linear(2, 2)
    model = nn.Sequential(shared, nn.ReLU(), shared)
    assert len(list(model.parameters())) == 2
    assert [name for name, _ in model.named_modules()] == ["", "0", "1"]
    assert list(model.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias"]


def test_state_dict_keys_order_and_values():
    net = Net()
    state = net.state_dict()
    assert list(state) == ["bias", "block.scale", "block.count", "block.inner.weight", "block.inner.bias",
                           "head.1.weight"]  # own parameters, own persistent buffers, then children
    assert all(not value.requires_grad for value in state.values())
    assert state["block.inner.weight"].data is net.block.inner.weight.data  # shares memory, like PyTorch
    assert net.state_dict(keep_vars=True)["bias"] is net.bias


def test_load_state_dict_accepts_tensors_and_numpy_arrays_and_copies_in_place():
    source, target = Net(), Net()
    state = {key: (value.numpy().astype(np.float64) if i % 2 else value) for i, (key, value)
             in enumerate(source.state_dict().items())}
    state["block.count"] = np.array(7)
    weight_array = target.block.inner.weight.data
    result = target.load_state_dict(state)
    assert result.missing_keys == [] and result.unexpected_keys == []
    assert target.block.inner.weight.data is weight_array  # in place: optimizers holding it stay valid
    assert target.block.inner.weight.dtype == np.float32  # converted to the parameter's dtype
    for key, value in source.state_dict().items():
        if key != "block.count":
            np.testing.assert_array_equal(target.state_dict()[key].numpy(), value.numpy())
    assert target.block.count.item() == 7 and target.block.count.dtype == np.int64


def test_load_state_dict_lists_every_missing_unexpected_and_misshaped_entry_and_changes_nothing():
    net = Net()
    before = {key: value.numpy().copy() for key, value in net.state_dict().items()}
    state = {key: value.numpy() + 1 for key, value in Net().state_dict().items()}
    del state["bias"], state["block.scale"]
    state["extra.weight"] = np.zeros(3, np.float32)
    state["block.inner.weight"] = np.zeros((3, 2), np.float32)
    with pytest.raises(ValueError) as error:
        net.load_state_dict(state)
    message = str(error.value)
    assert "missing keys: bias, block.scale" in message
    assert "unexpected keys: extra.weight" in message
    assert "block.inner.weight: shape (3, 2) in the state dict, (2, 3) in the model" in message
    for key, value in net.state_dict().items():  # nothing was half-loaded
        np.testing.assert_array_equal(value.numpy(), before[key])


def test_load_state_dict_non_strict_reports_keys_but_still_refuses_shape_mismatches():
    net = Net()
    state = {"bias": np.full(1, 5.0, np.float32), "junk": np.zeros(1)}
    result = net.load_state_dict(state, strict=False)
    assert result.unexpected_keys == ["junk"]
    assert "block.scale" in result.missing_keys and "bias" not in result.missing_keys
    assert net.bias.item() == 5.0
    with pytest.raises(ValueError, match=r"bias: shape \(2,\) in the state dict, \(1,\) in the model"):
        net.load_state_dict({"bias": np.zeros(2, np.float32)}, strict=False)


def test_load_state_dict_rejects_values_that_are_not_arrays():
    with pytest.raises(TypeError, match="'weight' is a list"):
        nn.Linear(2, 2).load_state_dict({"weight": [[1.0, 2.0], [3.0, 4.0]], "bias": np.zeros(2)})


def test_state_dict_round_trips_through_tinydl_save(tmp_path):
    net, copy_of_net = Net(), Net()
    tinydl.save(net.state_dict(), tmp_path / "net.ckpt")
    copy_of_net.load_state_dict(tinydl.load(tmp_path / "net.ckpt"))
    x = tinydl.randn(4, 3)
    np.testing.assert_array_equal(net(x).detach().numpy(), copy_of_net(x).detach().numpy())


def test_train_and_eval_switch_every_descendant():
    net = Net()
    assert all(m.training for m in net.modules())
    assert net.eval() is net and not any(m.training for m in net.modules())
    net.train()
    assert all(m.training for m in net.modules())
    with pytest.raises(TypeError, match="mode must be a bool"):
        net.train("no")


def test_zero_grad_sets_none_or_zeros():
    net = Net()
    net(tinydl.randn(4, 3)).sum().backward()
    assert all(p.grad is not None for p in net.parameters())
    net.zero_grad(set_to_none=False)
    assert all(p.grad is not None and not p.grad.data.any() and p.grad.shape == p.shape for p in net.parameters())
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())


def test_double_and_float_cast_floating_tensors_and_keep_the_objects():
    net = Net()
    weight = net.block.inner.weight
    net(tinydl.randn(2, 3)).sum().backward()
    assert net.double() is net
    assert weight is net.block.inner.weight and weight.dtype == np.float64 and weight.grad.dtype == np.float64
    assert net.block.count.dtype == np.int64  # integer buffers are not floating-point state
    assert net(tinydl.randn(2, 3).double()).dtype == np.float64
    net.float()
    assert all(p.dtype == np.float32 for p in net.parameters())
    net.to(tinydl.float64)
    assert net.bias.dtype == np.float64
    net.to("cpu", tinydl.float32)
    assert net.bias.dtype == np.float32 and net.bias.device == "cpu"
    net.to(tinydl.zeros(1, dtype=tinydl.float64))  # a tensor's device and dtype
    assert net.bias.dtype == np.float64
    with pytest.raises(TypeError, match="floating-point"):
        net.to(tinydl.int32)


def test_cuda_without_a_gpu_is_a_clear_error():
    if tinydl.is_available("cuda"):
        pytest.skip("a GPU is present")
    with pytest.raises(RuntimeError, match="cuda"):
        Net().cuda()


def test_apply_visits_children_first_then_the_module():
    visited = []
    net = Net()
    assert net.apply(lambda m: visited.append(type(m).__name__)) is net
    assert visited == ["Linear", "Block", "ReLU", "Linear", "Sequential", "Net"]


def test_repr_matches_pytorch_layout():
    assert repr(nn.Linear(3, 2)) == "Linear(in_features=3, out_features=2, bias=True)"
    assert repr(Net().head) == ("Sequential(\n  (0): ReLU()\n  (1): Linear(in_features=2, out_features=1, "
                                "bias=False)\n)")
    assert repr(Net()).startswith("Net(\n  (block): Block(\n    (inner): Linear(")


def test_torch_repr_agrees_for_common_layers():
    torch = pytest.importorskip("torch")
    pairs = [(nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=False), torch.nn.Conv2d(3, 8, 3, 2, 1, bias=False)),
             (nn.Conv2d(4, 8, (3, 5), dilation=2, groups=2), torch.nn.Conv2d(4, 8, (3, 5), dilation=2, groups=2)),
             (nn.MaxPool2d(2), torch.nn.MaxPool2d(2)), (nn.BatchNorm2d(4), torch.nn.BatchNorm2d(4)),
             (nn.Linear(3, 2), torch.nn.Linear(3, 2)), (nn.Flatten(), torch.nn.Flatten()),
             (nn.LayerNorm(4), torch.nn.LayerNorm(4)), (nn.GELU(), torch.nn.GELU()),
             (nn.LeakyReLU(), torch.nn.LeakyReLU()), (nn.Softmax(1), torch.nn.Softmax(1)),
             (nn.AvgPool2d(2), torch.nn.AvgPool2d(2)), (nn.AdaptiveAvgPool2d(1), torch.nn.AdaptiveAvgPool2d(1)),
             (nn.CrossEntropyLoss(), torch.nn.CrossEntropyLoss()), (nn.Identity(), torch.nn.Identity()),
             (nn.Sequential(nn.ReLU(), nn.Tanh()), torch.nn.Sequential(torch.nn.ReLU(), torch.nn.Tanh()))]
    for ours, theirs in pairs:
        assert repr(ours) == repr(theirs)


def test_assignment_errors_name_the_attribute():
    net = Net()
    with pytest.raises(TypeError, match="parameter 'bias'"):
        net.bias = tinydl.zeros(1)
    with pytest.raises(TypeError, match="child module 'head'"):
        net.head = 3
    with pytest.raises(TypeError, match="buffer 'count'"):
        net.block.count = np.zeros(())
    with pytest.raises(KeyError, match="contain no"):
        net.register_buffer("a.b", tinydl.zeros(1))
    with pytest.raises(TypeError, match="wrap it in nn.Parameter"):
        net.register_parameter("w", tinydl.zeros(1))
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        net.nothing

    class Early(nn.Module):
        def __init__(self):
            self.weight = nn.Parameter(tinydl.zeros(1))
    with pytest.raises(AttributeError, match=r"super\(\).__init__\(\)"):
        Early()


def test_reassigning_and_deleting_members():
    net = Net()
    net.bias = None
    assert "bias" not in dict(net.named_parameters()) and "bias" not in net.state_dict()
    net.head = nn.Identity()
    assert isinstance(net.head, nn.Identity)
    del net.block
    assert "block" not in net._modules
    net.bias = nn.Linear(1, 1)  # a name can change kind
    assert "bias" in net._modules and "bias" not in net._parameters


def test_parameter_shares_the_array_and_requires_grad():
    array = np.ones(3, np.float32)
    param = nn.Parameter(array)
    assert param.data is array and param.requires_grad and param.is_leaf
    assert repr(param).startswith("Parameter containing:\ntensor(")
    assert not nn.Parameter(tinydl.ones(2), requires_grad=False).requires_grad
    with pytest.raises(TypeError, match="floating-point"):
        nn.Parameter(np.arange(3))


def test_deepcopy_gives_an_independent_model():
    net = Net()
    clone = copy.deepcopy(net)
    clone.bias.data += 1
    assert net.bias.item() == 0 and clone.bias.item() == 1
    x = tinydl.randn(2, 3)
    np.testing.assert_allclose(clone(x).detach().numpy(), net(x).detach().numpy() + 1, rtol=1e-6)


def test_requires_grad_switches_every_parameter():
    net = Net().requires_grad_(False)
    assert not any(p.requires_grad for p in net.parameters())


def test_forward_not_implemented_names_the_class():
    class Empty(nn.Module):
        pass
    with pytest.raises(NotImplementedError, match="Empty"):
        Empty()(1)
