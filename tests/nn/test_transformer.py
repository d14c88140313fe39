"""Transformer layers against PyTorch (same weights, dropout 0, float64), the encoder stack, and the positional
encodings against their formulas."""
import math

import numpy as np
import pytest

import tinydl
import tinydl.nn as nn

from .oracle import copy_weights

torch = pytest.importorskip("torch")

D, HEADS, FF = 8, 2, 16


def _run(module, library, arrays, masks):
    convert = tinydl.tensor if library is tinydl else torch.tensor
    inputs = [convert(a, requires_grad=True) for a in arrays]
    return inputs, module(*inputs, **{k: convert(v) if isinstance(v, np.ndarray) else v for k, v in masks.items()})


def _compare(ours, theirs, arrays, tolerance=1e-11, **masks):
    ours_inputs, out = _run(ours, tinydl, arrays, masks)
    their_inputs, expected = _run(theirs, torch, arrays, masks)
    upstream = np.random.default_rng(0).standard_normal(tuple(expected.shape))
    (out * tinydl.tensor(upstream)).sum().backward()
    (expected * torch.tensor(upstream)).sum().backward()
    np.testing.assert_allclose(out.data, expected.detach().numpy(), rtol=tolerance, atol=tolerance)
    for k, (a, b) in enumerate(zip(ours_inputs, their_inputs)):
        np.testing.assert_allclose(a.grad.data, b.grad.numpy(), rtol=tolerance, atol=tolerance, err_msg=f"input {k}")
    their_parameters = dict(theirs.named_parameters())
    assert [name for name, _ in ours.named_parameters()] == list(their_parameters)
    for name, parameter in ours.named_parameters():
        np.testing.assert_allclose(parameter.grad.data, their_parameters[name].grad.numpy(), rtol=tolerance,
                                   atol=tolerance, err_msg=name)


def _layer_pair(kind, **options):
    theirs = getattr(torch.nn, kind)(D, HEADS, FF, dropout=0.0, **options).double()
    ours = getattr(nn, kind)(D, HEADS, FF, dropout=0.0, **options).double()
    copy_weights(ours, theirs)
    return ours, theirs


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_encoder_layer_matches_pytorch(norm_first, activation):
    ours, theirs = _layer_pair("TransformerEncoderLayer", norm_first=norm_first, activation=activation,
                               batch_first=True)
    rng = np.random.default_rng(1)
    padding = rng.random((3, 5)) > 0.7
    padding[:, 0] = False
    causal = np.triu(np.full((5, 5), -np.inf), 1)
    _compare(ours, theirs, [rng.standard_normal((3, 5, D))])
    for masks in ({"src_key_padding_mask": padding}, {"src_mask": causal, "is_causal": True}):
        ours.zero_grad(), theirs.zero_grad()
        _compare(ours, theirs, [rng.standard_normal((3, 5, D))], **masks)


@pytest.mark.parametrize("norm_first", [False, True])
def test_decoder_layer_matches_pytorch(norm_first):
    ours, theirs = _layer_pair("TransformerDecoderLayer", norm_first=norm_first)
    rng = np.random.default_rng(2)
    memory_padding = rng.random((2, 6)) > 0.7
    memory_padding[:, 0] = False
    causal = np.triu(np.ones((4, 4), bool), 1)
    _compare(ours, theirs, [rng.standard_normal((4, 2, D)), rng.standard_normal((6, 2, D))], tgt_mask=causal,
             memory_key_padding_mask=memory_padding)


def test_encoder_stack_matches_pytorch_and_its_layers_are_independent_copies():
    theirs = torch.nn.TransformerEncoder(torch.nn.TransformerEncoderLayer(D, HEADS, FF, dropout=0.0), 3,
                                         norm=torch.nn.LayerNorm(D), enable_nested_tensor=False).double()
    ours = nn.TransformerEncoder(nn.TransformerEncoderLayer(D, HEADS, FF, dropout=0.0), 3,
                                 norm=nn.LayerNorm(D)).double()
    assert list(ours.state_dict()) == list(theirs.state_dict())
    weights = [layer.linear1.weight for layer in ours.layers]
    assert len({id(w) for w in weights}) == 3 and len({id(w.data) for w in weights}) == 3
    copy_weights(ours, theirs)
    rng = np.random.default_rng(3)
    padding = rng.random((2, 7)) > 0.7
    padding[:, 0] = False
    _compare(ours, theirs, [rng.standard_normal((7, 2, D))], src_key_padding_mask=padding)


def test_encoder_layer_dropout_only_in_training():
    tinydl.manual_seed(0)
    layer = nn.TransformerEncoderLayer(D, HEADS, FF, dropout=0.3).double()
    x = tinydl.tensor(np.random.default_rng(4).standard_normal((5, 2, D)))
    assert not np.allclose(layer(x).data, layer(x).data)
    layer.eval()
    np.testing.assert_array_equal(layer(x).data, layer(x).data)


def test_bad_activation_and_width():
    with pytest.raises(ValueError, match=r"TransformerEncoderLayer: activation must be 'relu', 'gelu' or a "
                                         r"callable, got 'swish'"):
        nn.TransformerEncoderLayer(D, HEADS, activation="swish")
    with pytest.raises(ValueError, match=r"embed_dim 8 is not divisible by num_heads 3"):
        nn.TransformerDecoderLayer(D, 3)


# -------------------------------------------------------------------------------------- positional encodings
def test_sinusoidal_encoding_follows_the_formula():
    d_model, length = 7, 9
    encoding = nn.SinusoidalPositionalEncoding(d_model, max_len=20, dtype=np.float64)
    expected = np.zeros((length, d_model))
    for position in range(length):
        for i in range(d_model):
            angle = position / 10000 ** ((i - i % 2) / d_model)
            expected[position, i] = math.sin(angle) if i % 2 == 0 else math.cos(angle)
    x = np.random.default_rng(5).standard_normal((length, 3, d_model))
    np.testing.assert_allclose(encoding(tinydl.tensor(x)).data, x + expected[:, None], atol=1e-12)
    batch_first = nn.SinusoidalPositionalEncoding(d_model, max_len=20, batch_first=True, dtype=np.float64)
    np.testing.assert_allclose(batch_first(tinydl.tensor(x.transpose(1, 0, 2))).data,
                               (x + expected[:, None]).transpose(1, 0, 2), atol=1e-12)
    assert encoding.state_dict() == {}  # a fixed table: nothing to save or load


def test_learned_encoding_trains_only_the_rows_it_used():
    tinydl.manual_seed(1)
    encoding = nn.LearnedPositionalEncoding(10, 4, batch_first=True)
    assert encoding.weight.shape == (10, 4) and abs(float(encoding.weight.data.std()) - 0.02) < 0.01
    x = tinydl.tensor(np.ones((2, 6, 4), np.float32), requires_grad=True)
    out = encoding(x)
    np.testing.assert_allclose(out.data, 1 + np.broadcast_to(encoding.weight.data[:6], (2, 6, 4)))
    out.sum().backward()
    np.testing.assert_array_equal(encoding.weight.grad.data[:6], 2)
    np.testing.assert_array_equal(encoding.weight.grad.data[6:], 0)


@pytest.mark.parametrize("encoding", [nn.SinusoidalPositionalEncoding(4, max_len=5),
                                      nn.LearnedPositionalEncoding(5, 4)])
def test_sequences_longer_than_max_len_are_refused(encoding):
    with pytest.raises(ValueError, match=r"the sequence length 6 exceeds max_len=5 \(input of shape \(6, 2, 4\)\)"):
        encoding(tinydl.zeros(6, 2, 4))
