"""Sequential, ModuleList and ModuleDict: registration under PyTorch's keys, indexing, iteration, errors."""
from collections import OrderedDict

import numpy as np
import pytest

import tinydl
from tinydl import nn


def test_sequential_applies_modules_in_order_and_indexes_like_a_list():
    first, second = nn.Linear(3, 4), nn.Linear(4, 2)
    model = nn.Sequential(first, nn.ReLU(), second)
    x = tinydl.randn(5, 3)
    expected = second(tinydl.functional.relu(first(x)))
    np.testing.assert_array_equal(model(x).detach().numpy(), expected.detach().numpy())
    assert len(model) == 3 and model[0] is first and model[-1] is second
    assert list(model) == [first, model[1], second]
    tail = model[1:]
    assert isinstance(tail, nn.Sequential) and list(tail._modules) == ["1", "2"] and tail[1] is second
    assert list(model.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    with pytest.raises(IndexError, match="index 3 is out of range for 3 modules"):
        model[3]
    with pytest.raises(TypeError, match="integers or slices"):
        model["0"]


def test_sequential_from_an_ordered_dict_keeps_the_names_and_append_continues_numbering():
    model = nn.Sequential(OrderedDict(conv=nn.Conv2d(1, 2, 3), act=nn.ReLU()))
    assert list(model._modules) == ["conv", "act"]
    assert list(model.state_dict()) == ["conv.weight", "conv.bias"]
    numbered = nn.Sequential(nn.ReLU()).append(nn.Tanh())
    assert list(numbered._modules) == ["0", "1"]


def test_module_list_registers_its_items():
    layers = nn.ModuleList([nn.Linear(2, 2) for _ in range(3)])
    assert len(layers) == 3 and len(list(layers.parameters())) == 6
    layers.append(nn.Linear(2, 1))
    layers.insert(0, nn.Identity())
    assert isinstance(layers[0], nn.Identity) and layers[-1].out_features == 1
    assert list(layers.state_dict())[:2] == ["1.weight", "1.bias"]
    layers[1] = nn.Tanh()
    assert isinstance(layers[1], nn.Tanh) and "1.weight" not in layers.state_dict()
    assert isinstance(layers[1:3], nn.ModuleList) and len(layers[1:3]) == 2
    with pytest.raises(IndexError):
        layers[10]
    with pytest.raises(NotImplementedError, match="ModuleList"):
        layers(tinydl.zeros(1))


def test_module_dict_registers_its_items_under_their_keys():
    heads = nn.ModuleDict({"a": nn.Linear(2, 1), "b": nn.Linear(2, 3)})
    assert list(heads) == ["a", "b"] and "a" in heads and len(heads) == 2
    assert list(heads.state_dict()) == ["a.weight", "a.bias", "b.weight", "b.bias"]
    heads["c"] = nn.ReLU()
    assert list(heads.keys()) == ["a", "b", "c"]
    assert heads.pop("a").out_features == 1 and list(heads) == ["b", "c"]
    assert dict(heads.items())["b"] is heads["b"]
    with pytest.raises(KeyError, match=r"no module named 'z'; keys are \['b', 'c'\]"):
        heads["z"]
