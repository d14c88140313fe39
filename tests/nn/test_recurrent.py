"""Embedding, the recurrent cells and RNN/LSTM/GRU against PyTorch (same weights, float64), initialisation, dropout
between layers, and errors."""
import math

import numpy as np
import pytest

import tinydl
import tinydl.nn as nn
from tinydl.gradcheck import gradgradcheck

from .oracle import copy_weights

torch = pytest.importorskip("torch")

LAYERS = {"RNN": (nn.RNN, torch.nn.RNN), "LSTM": (nn.LSTM, torch.nn.LSTM), "GRU": (nn.GRU, torch.nn.GRU)}
CELLS = {"RNNCell": (nn.RNNCell, torch.nn.RNNCell), "LSTMCell": (nn.LSTMCell, torch.nn.LSTMCell),
         "GRUCell": (nn.GRUCell, torch.nn.GRUCell)}


def _pair(kind, table, **kwargs):
    ours_class, their_class = table[kind]
    theirs = their_class(**kwargs).double()
    ours = ours_class(**kwargs).double()
    copy_weights(ours, theirs)
    return ours, theirs


def _flatten(result):
    """(output, h_n) or (output, (h_n, c_n)) or a cell's h / (h, c), as a flat list of tensors."""
    flat = []
    for item in result if isinstance(result, tuple) else (result,):
        flat.extend(item if isinstance(item, tuple) else (item,))
    return flat


def _compare(ours, theirs, inputs, states=None, tolerance=1e-12):
    """Forward of both modules, then backward of one random weighting of every output; compares outputs, the
    gradients of the input, of the initial states and of every parameter."""
    rng = np.random.default_rng(0)
    x_ours, x_theirs = tinydl.tensor(inputs, requires_grad=True), torch.tensor(inputs, requires_grad=True)
    args_ours, args_theirs = [x_ours], [x_theirs]
    state_pairs = []
    if states is not None:
        pairs = [(tinydl.tensor(s, requires_grad=True), torch.tensor(s, requires_grad=True)) for s in states]
        state_pairs = pairs
        pack = (lambda ts: tuple(ts)) if len(states) == 2 else (lambda ts: ts[0])
        args_ours.append(pack([p[0] for p in pairs]))
        args_theirs.append(pack([p[1] for p in pairs]))
    outputs_ours, outputs_theirs = _flatten(ours(*args_ours)), _flatten(theirs(*args_theirs))
    weights = [rng.standard_normal(tuple(o.shape)) for o in outputs_theirs]
    sum((o * tinydl.tensor(w)).sum() for o, w in zip(outputs_ours, weights)).backward()
    sum((o * torch.tensor(w)).sum() for o, w in zip(outputs_theirs, weights)).backward()
    for k, (a, b) in enumerate(zip(outputs_ours, outputs_theirs)):
        np.testing.assert_allclose(a.data, b.detach().numpy(), rtol=tolerance, atol=tolerance, err_msg=f"output {k}")
    for name, (a, b) in [("input", (x_ours, x_theirs))] + [(f"state {k}", p) for k, p in enumerate(state_pairs)]:
        np.testing.assert_allclose(a.grad.data, b.grad.numpy(), rtol=tolerance, atol=tolerance, err_msg=name)
    their_parameters = dict(theirs.named_parameters())
    for name, parameter in ours.named_parameters():
        np.testing.assert_allclose(parameter.grad.data, their_parameters[name].grad.numpy(), rtol=tolerance,
                                   atol=tolerance, err_msg=name)


# ---------------------------------------------------------------------------------------------------- layers
@pytest.mark.parametrize("kind", sorted(LAYERS))
@pytest.mark.parametrize("options", [
    {},
    {"num_layers": 2, "bidirectional": True},
    {"num_layers": 3, "batch_first": True},
    {"num_layers": 2, "bidirectional": True, "batch_first": True, "bias": False},
])
def test_layers_match_pytorch(kind, options):
    ours, theirs = _pair(kind, LAYERS, input_size=4, hidden_size=5, **options)
    shape = (3, 6, 4) if options.get("batch_first") else (6, 3, 4)
    _compare(ours, theirs, np.random.default_rng(1).standard_normal(shape))


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("kind", sorted(LAYERS))
def test_layers_take_an_empty_batch_as_pytorch_does(kind, fused):
    ours, theirs = _pair(kind, LAYERS, input_size=4, hidden_size=5, num_layers=2, bidirectional=True)
    ours.fused = fused
    _compare(ours, theirs, np.zeros((6, 0, 4)))


@pytest.mark.parametrize("kind", sorted(LAYERS))
def test_layers_with_an_initial_state_and_unbatched_input(kind):
    ours, theirs = _pair(kind, LAYERS, input_size=4, hidden_size=5, num_layers=2, bidirectional=True)
    rng = np.random.default_rng(2)
    states = [rng.standard_normal((4, 3, 5)) for _ in range(2 if kind == "LSTM" else 1)]
    _compare(ours, theirs, rng.standard_normal((7, 3, 4)), states)
    unbatched_states = [s[:, 0] for s in states]
    ours.zero_grad(), theirs.zero_grad()
    _compare(ours, theirs, rng.standard_normal((7, 4)), unbatched_states)


def test_relu_rnn_matches_pytorch():
    ours, theirs = _pair("RNN", LAYERS, input_size=3, hidden_size=4, num_layers=2, nonlinearity="relu")
    _compare(ours, theirs, np.random.default_rng(3).standard_normal((5, 2, 3)))


@pytest.mark.parametrize("kind", sorted(LAYERS))
def test_parameter_names_shapes_and_order_are_pytorch(kind):
    ours_class, their_class = LAYERS[kind]
    options = {"input_size": 3, "hidden_size": 4, "num_layers": 2, "bidirectional": True}
    ours, theirs = ours_class(**options), their_class(**options)
    assert [(name, tuple(p.shape)) for name, p in ours.named_parameters()] == \
        [(name, tuple(p.shape)) for name, p in theirs.named_parameters()]


@pytest.mark.parametrize("kind", sorted(LAYERS) + sorted(CELLS))
def test_default_initialisation_is_uniform_within_one_over_sqrt_hidden(kind):
    table = LAYERS if kind in LAYERS else CELLS
    tinydl.manual_seed(7)
    first = table[kind][0](input_size=20, hidden_size=64)
    tinydl.manual_seed(7)
    second = table[kind][0](input_size=20, hidden_size=64)
    values = np.concatenate([p.data.ravel() for p in first.parameters()])
    bound = 1 / math.sqrt(64)
    assert values.dtype == np.float32
    assert np.abs(values).max() <= bound and np.abs(values).max() > 0.95 * bound
    assert abs(values.mean()) < 0.05 * bound and abs(values.std() - bound / math.sqrt(3)) < 0.05 * bound
    for a, b in zip(first.parameters(), second.parameters()):  # drawn from tinydl's seeded generator
        np.testing.assert_array_equal(a.data, b.data)


def test_dropout_between_layers_only_in_training():
    tinydl.manual_seed(0)
    lstm = nn.LSTM(4, 8, num_layers=2, dropout=0.5).double()
    reference = nn.LSTM(4, 8, num_layers=2).double()
    reference.load_state_dict({k: v.numpy() for k, v in lstm.state_dict().items()})
    x = tinydl.tensor(np.random.default_rng(4).standard_normal((5, 3, 4)))
    trained, _ = lstm(x)
    assert not np.allclose(trained.data, reference(x)[0].data)
    lstm.eval()
    np.testing.assert_allclose(lstm(x)[0].data, reference(x)[0].data, atol=1e-15)
    single = nn.GRU(4, 8, dropout=0.5).double().train()  # one layer: nothing to drop between layers
    twin = nn.GRU(4, 8).double()
    twin.load_state_dict({k: v.numpy() for k, v in single.state_dict().items()})
    np.testing.assert_allclose(single(x)[0].data, twin(x)[0].data, atol=1e-15)


def test_lstm_layer_runs_in_float32_and_keeps_it():
    lstm = nn.LSTM(4, 6, num_layers=2, bidirectional=True, batch_first=True)
    x = tinydl.tensor(np.random.default_rng(5).standard_normal((2, 9, 4)).astype(np.float32), requires_grad=True)
    output, (h, c) = lstm(x)
    assert output.shape == (2, 9, 12) and h.shape == (4, 2, 6) and c.shape == (4, 2, 6)
    (output.sum() + h.sum()).backward()
    assert output.dtype == h.dtype == x.grad.dtype == lstm.weight_hh_l1_reverse.grad.dtype == np.float32


# ------------------------------------------------------------------------------------------------------ cells
@pytest.mark.parametrize("kind", sorted(CELLS))
@pytest.mark.parametrize("bias", [True, False])
def test_cells_match_pytorch(kind, bias):
    ours, theirs = _pair(kind, CELLS, input_size=3, hidden_size=4, bias=bias)
    rng = np.random.default_rng(6)
    states = [rng.standard_normal((2, 4)) for _ in range(2 if kind == "LSTMCell" else 1)]
    _compare(ours, theirs, rng.standard_normal((2, 3)), states)
    ours.zero_grad(), theirs.zero_grad()
    _compare(ours, theirs, rng.standard_normal((2, 3)))  # hx defaults to zeros


def test_relu_cell_and_unbatched_cells_match_pytorch():
    ours, theirs = _pair("RNNCell", CELLS, input_size=3, hidden_size=4, nonlinearity="relu")
    _compare(ours, theirs, np.random.default_rng(7).standard_normal((5, 3)))
    ours, theirs = _pair("LSTMCell", CELLS, input_size=3, hidden_size=4)
    _compare(ours, theirs, np.random.default_rng(8).standard_normal(3))


# ------------------------------------------------------------------------------------------------- embedding
def test_embedding_matches_pytorch_and_padding_row_gets_no_gradient():
    theirs = torch.nn.Embedding(10, 4, padding_idx=2).double()
    ours = nn.Embedding(10, 4, padding_idx=2).double()
    copy_weights(ours, theirs)
    ids = np.array([[1, 2, 3], [2, 9, 1]])
    out, expected = ours(tinydl.tensor(ids)), theirs(torch.tensor(ids))
    upstream = np.random.default_rng(9).standard_normal(out.shape)
    (out * tinydl.tensor(upstream)).sum().backward()
    (expected * torch.tensor(upstream)).sum().backward()
    np.testing.assert_allclose(out.data, expected.detach().numpy())
    np.testing.assert_allclose(ours.weight.grad.data, theirs.weight.grad.numpy())
    assert np.all(ours.weight.grad.data[2] == 0)


def test_embedding_initialisation_and_padding_row():
    tinydl.manual_seed(3)
    table = nn.Embedding(2000, 16, padding_idx=-1)
    assert table.padding_idx == 1999 and np.all(table.weight.data[1999] == 0)
    values = table.weight.data[:1999]
    assert abs(values.mean()) < 0.02 and abs(values.std() - 1) < 0.02


def test_embedding_rejects_ids_outside_the_table():
    with pytest.raises(IndexError, match=r"embedding: id 7 is out of range for a table of 5 embeddings"):
        nn.Embedding(5, 3)(tinydl.tensor(np.array([0, 7])))
    with pytest.raises(IndexError, match=r"id -1 is out of range for a table of 5"):
        nn.Embedding(5, 3)(tinydl.tensor(np.array([-1, 2])))
    with pytest.raises(ValueError, match=r"Embedding: padding_idx 5 is outside the table of 5 embeddings"):
        nn.Embedding(5, 3, padding_idx=5)


# ------------------------------------------------------------------------------------------------------ errors
@pytest.mark.parametrize("module, args, message", [
    (lambda: nn.LSTM(3, 4), [(6, 2, 5)], r"LSTM: expected input with feature size input_size=3, found 5"),
    (lambda: nn.GRU(3, 4), [(2, 3, 6, 3)], r"GRU: expected a 3-D input \(seq_len, batch, input_size\) .* found a "
                                           r"4-D input of shape \(2, 3, 6, 3\)"),
    (lambda: nn.RNN(3, 4, batch_first=True), [(2, 0, 3)], r"RNN: expected a non-empty sequence"),
    (lambda: nn.RNN(3, 4, num_layers=2), [(6, 2, 3), (1, 2, 4)],
     r"RNN: expected hx of shape \(2, 2, 4\), found \(1, 2, 4\)"),
    (lambda: nn.GRU(3, 4, bidirectional=True), [(6, 2, 3), (2, 3, 4)],
     r"GRU: expected hx of shape \(2, 2, 4\), found \(2, 3, 4\)"),
    (lambda: nn.GRUCell(3, 4), [(2, 3), (3, 4)], r"gru_cell: expected hx of shape \(2, 4\) .* found \(3, 4\)"),
    (lambda: nn.RNNCell(3, 4), [(2, 5)], r"rnn_tanh_cell: input has feature size 5 .* expects input_size 3"),
])
def test_bad_shapes_name_expected_and_found(module, args, message):
    layer = module()
    tensors = [tinydl.tensor(np.zeros(shape, np.float32)) for shape in args]
    with pytest.raises(ValueError, match=message):
        layer(*tensors)


def test_lstm_state_errors_and_bad_constructor_arguments():
    lstm = nn.LSTM(3, 4)
    x = tinydl.tensor(np.zeros((6, 2, 3), np.float32))
    with pytest.raises(TypeError, match=r"LSTM: hx must be a pair \(h_0, c_0\)"):
        lstm(x, tinydl.zeros(1, 2, 4))
    with pytest.raises(ValueError, match=r"LSTM: expected c_0 of shape \(1, 2, 4\), found \(1, 2, 5\)"):
        lstm(x, (tinydl.zeros(1, 2, 4), tinydl.zeros(1, 2, 5)))
    with pytest.raises(ValueError, match=r"LSTM: hidden_size must be a positive int, got 0"):
        nn.LSTM(3, 0)
    with pytest.raises(ValueError, match=r"RNN: nonlinearity must be 'tanh' or 'relu', got 'gelu'"):
        nn.RNN(3, 4, nonlinearity="gelu")
    with pytest.raises(ValueError, match=r"GRU: dropout must be a probability in \[0, 1\], got 1.5"):
        nn.GRU(3, 4, dropout=1.5)


# ------------------------------------------------------------------------------ fused and plain paths
def _run_layer(layer, x, h0, fused):
    """Output, h_n and every gradient of the layer on one input, with the fused or the composed recurrence."""
    layer.fused = fused
    layer.zero_grad()
    x, h0 = tinydl.tensor(x, requires_grad=True), tinydl.tensor(h0, requires_grad=True)
    output, h_n = layer(x, h0)
    weights = np.random.default_rng(5).standard_normal(output.shape).astype(output.dtype)
    ((output * tinydl.tensor(weights)).sum() + (h_n * h_n).sum()).backward()
    return [output.data, h_n.data, x.grad.data, h0.grad.data] + [p.grad.data for p in layer.parameters()]


@pytest.mark.parametrize("kind, options", [("GRU", {}), ("GRU", {"bias": False, "bidirectional": True}),
                                           ("RNN", {}), ("RNN", {"nonlinearity": "relu", "bidirectional": True})])
@pytest.mark.parametrize("dtype, tolerance", [(np.float64, 1e-12), (np.float32, 2e-5)])
def test_fused_sequence_kernels_match_the_composed_path(kind, options, dtype, tolerance):
    layer = getattr(nn, kind)(input_size=4, hidden_size=6, num_layers=2, **options)
    layer = layer.double() if dtype == np.float64 else layer
    rng = np.random.default_rng(4)
    x = rng.standard_normal((9, 3, 4)).astype(dtype)
    h0 = rng.standard_normal((2 * layer.num_directions, 3, 6)).astype(dtype)
    fused, plain = _run_layer(layer, x, h0, True), _run_layer(layer, x, h0, False)
    for k, (a, b) in enumerate(zip(fused, plain)):
        np.testing.assert_allclose(a, b, rtol=tolerance, atol=tolerance, err_msg=f"value {k}")


@pytest.mark.parametrize("kind", ["GRU", "RNN"])
def test_plain_path_is_twice_differentiable_and_the_fused_one_says_it_is_not(kind):
    layer = getattr(nn, kind)(input_size=2, hidden_size=3).double()
    x = tinydl.tensor(np.random.default_rng(6).standard_normal((4, 2, 2)), requires_grad=True)
    layer.fused = False
    assert gradgradcheck(lambda x: layer(x)[0], (x,))
    layer.fused = True
    (gradient,) = tinydl.grad(layer(x)[0].sum(), x, create_graph=False)
    assert gradient.shape == x.shape
    with pytest.raises(RuntimeError, match=f"{kind.lower()}_sequence: .*differentiable only once"):
        tinydl.grad(layer(x)[0].sum(), x, create_graph=True)
