"""The recurrent cells and the LSTM sequence kernel: PyTorch as oracle, second derivatives, dtypes, errors."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinydl
import tinydl.functional as F
from tinydl import Tensor
from tinydl.gradcheck import gradcheck, gradgradcheck

from catalogue.recurrent import cell_cases, reference_lstm

torch = pytest.importorskip("torch")

GATES = {"rnn_tanh_cell": 1, "rnn_relu_cell": 1, "gru_cell": 3, "lstm_cell": 4}


def _cell_arrays(op, batch, input_size, hidden, bias, rng, dtype=np.float64):
    gates = GATES[op]
    lead = (batch,) if batch else ()
    arrays = [rng.standard_normal(lead + (input_size,)), rng.standard_normal(lead + (hidden,))]
    if op == "lstm_cell":
        arrays.append(rng.standard_normal(lead + (hidden,)))
    arrays += [rng.uniform(-0.5, 0.5, (gates * hidden, input_size)), rng.uniform(-0.5, 0.5, (gates * hidden, hidden))]
    if bias:
        arrays += [rng.uniform(-0.5, 0.5, gates * hidden) for _ in range(2)]
    return [a.astype(dtype) for a in arrays]


def _call(module, op, tensors):
    if op == "lstm_cell":
        x, h, c, *rest = tensors
        return getattr(module, op)(x, (h, c), *rest)
    return getattr(module, op)(*tensors)


@pytest.mark.parametrize("op", sorted(GATES))
@pytest.mark.parametrize("batch, bias", [(4, True), (0, True), (3, False)])
@pytest.mark.parametrize("dtype, tolerance", [(np.float64, 1e-12), (np.float32, 2e-5)])
def test_cells_match_pytorch_forward_and_backward(op, batch, bias, dtype, tolerance):
    arrays = _cell_arrays(op, batch, 5, 6, bias, np.random.default_rng(0), dtype)
    ours = [Tensor(a.copy(), requires_grad=True) for a in arrays]
    theirs = [torch.tensor(a, requires_grad=True) for a in arrays]
    states = 3 if op == "lstm_cell" else 2
    out = _call(F, op, ours)
    out = out if isinstance(out, tuple) else (out,)
    batched = theirs if batch else [t.unsqueeze(0) for t in theirs[:states]] + theirs[states:]
    expected = _call(torch, op, batched)  # torch's cell ops take batched inputs only
    expected = tuple(e if batch else e.squeeze(0) for e in (expected if isinstance(expected, tuple) else (expected,)))
    weights = [np.random.default_rng(k + 1).standard_normal(o.shape).astype(dtype) for k, o in enumerate(out)]
    sum((o * Tensor(w)).sum() for o, w in zip(out, weights)).backward()
    sum((e * torch.tensor(w)).sum() for e, w in zip(expected, weights)).backward()
    for o, e in zip(out, expected):
        assert o.dtype == dtype
        np.testing.assert_allclose(o.data, e.detach().numpy(), rtol=tolerance, atol=tolerance)
    for k, (a, b) in enumerate(zip(ours, theirs)):
        assert a.grad.dtype == dtype
        np.testing.assert_allclose(a.grad.data, b.grad.numpy(), rtol=tolerance, atol=tolerance, err_msg=f"input {k}")


@pytest.mark.parametrize("op", ["lstm_sequence", "lstm_layer"])
@pytest.mark.parametrize("reverse", [False, True])
def test_lstm_sequence_matches_a_pytorch_lstm_layer(reverse, op):
    rng = np.random.default_rng(1)
    length, batch, input_size, hidden = 7, 3, 4, 5
    layer = torch.nn.LSTM(input_size, hidden, bidirectional=reverse).double()
    suffix = "_reverse" if reverse else ""
    w_ih, w_hh = (getattr(layer, f"weight_{k}_l0{suffix}") for k in ("ih", "hh"))
    b_ih, b_hh = (getattr(layer, f"bias_{k}_l0{suffix}") for k in ("ih", "hh"))
    x = rng.standard_normal((length, batch, input_size))
    h0, c0 = rng.standard_normal((2, 2 if reverse else 1, batch, hidden))
    upstream = rng.standard_normal((length, batch, hidden))
    x_t = torch.tensor(x, requires_grad=True)
    out_t, (h_t, c_t) = layer(x_t, (torch.tensor(h0), torch.tensor(c0)))
    out_t = out_t[..., hidden:] if reverse else out_t
    (out_t * torch.tensor(upstream)).sum().backward()

    x_ours = Tensor(x.copy(), requires_grad=True)
    w_ih_ours, w_hh_ours, bias_ours = (Tensor(w.detach().numpy().copy(), requires_grad=True)
                                       for w in (w_ih, w_hh, b_ih + b_hh))
    direction = 1 if reverse else 0
    state = (Tensor(h0[direction]), Tensor(c0[direction]))
    if op == "lstm_sequence":
        gates = F.linear(x_ours, w_ih_ours, bias_ours)
        out, (h, c) = F.lstm_sequence(gates, state, w_hh_ours, reverse=reverse)
    else:
        out, (h, c) = F.lstm_layer(x_ours, state, w_ih_ours, w_hh_ours, bias_ours, reverse=reverse)
    (out * Tensor(upstream)).sum().backward()

    np.testing.assert_allclose(out.data, out_t.detach().numpy(), atol=1e-12)
    np.testing.assert_allclose(h.data, h_t[direction].detach().numpy(), atol=1e-12)
    np.testing.assert_allclose(c.data, c_t[direction].detach().numpy(), atol=1e-12)
    np.testing.assert_allclose(x_ours.grad.data, x_t.grad.numpy(), atol=1e-12)
    np.testing.assert_allclose(w_hh_ours.grad.data, w_hh.grad.numpy(), atol=1e-12)
    np.testing.assert_allclose(w_ih_ours.grad.data, w_ih.grad.numpy(), atol=1e-12)
    np.testing.assert_allclose(bias_ours.grad.data, b_ih.grad.numpy(), atol=1e-12)


def test_lstm_sequence_gradients_of_the_final_state_reach_the_initial_state():
    rng = np.random.default_rng(2)
    inputs = [Tensor(rng.standard_normal(s), requires_grad=True) for s in [(5, 2, 12), (2, 3), (2, 3), (12, 3)]]

    def final_state(gates, h0, c0, w_hh):
        _, (h, c) = F.lstm_sequence(gates, (h0, c0), w_hh)
        return h, c
    assert gradcheck(final_state, inputs)


def test_lstm_cell_equals_one_step_of_the_gate_by_gate_reference():
    arrays = _cell_arrays("lstm_cell", 2, 3, 4, True, np.random.default_rng(3))
    h, c = _call(F, "lstm_cell", [Tensor(a) for a in arrays])
    expected_h, expected_c = reference_lstm(*arrays)
    np.testing.assert_allclose(h.data, expected_h, atol=1e-12)
    np.testing.assert_allclose(c.data, expected_c, atol=1e-12)


@pytest.mark.parametrize("op", ["lstm_cell", "lstm_sequence"])
def test_fused_lstm_kernels_refuse_second_derivatives(op):
    rng = np.random.default_rng(4)
    if op == "lstm_cell":
        arrays = _cell_arrays(op, 2, 3, 4, True, rng)
        tensors = [Tensor(a, requires_grad=True) for a in arrays]
        h, _ = _call(F, op, tensors)
    else:
        tensors = [Tensor(rng.standard_normal(s), requires_grad=True) for s in [(3, 2, 16), (2, 4), (2, 4), (16, 4)]]
        h, _ = F.lstm_sequence(tensors[0], (tensors[1], tensors[2]), tensors[3])
    with pytest.raises(RuntimeError, match=f"{op}.*differentiable only once"):
        tinydl.grad(h.sum(), tensors[0], create_graph=True)


@settings(max_examples=15, deadline=None)
@given(op=st.sampled_from(["rnn_tanh_cell", "gru_cell"]), data=st.data())
def test_composed_cells_have_correct_second_derivatives(op, data):
    case = data.draw(cell_cases(op))
    tensors = [Tensor(a, requires_grad=True) for a in case.arrays]
    assert gradgradcheck(getattr(F, op), tensors)


def test_relu_cell_second_derivative_through_the_hidden_path():
    rng = np.random.default_rng(5)
    arrays = _cell_arrays("rnn_relu_cell", 2, 3, 4, True, rng)
    tensors = [Tensor(a, requires_grad=True) for a in arrays]
    assert gradgradcheck(F.rnn_relu_cell, tensors)


def test_long_sequence_backward_does_not_recurse():
    rng = np.random.default_rng(6)
    hidden = 4
    gates = Tensor(rng.standard_normal((3000, 1, 4 * hidden)).astype(np.float32), requires_grad=True)
    w_hh = Tensor(rng.uniform(-0.3, 0.3, (4 * hidden, hidden)).astype(np.float32), requires_grad=True)
    h = Tensor(np.zeros((1, hidden), np.float32))
    c = Tensor(np.zeros((1, hidden), np.float32))
    for t in range(0, 3000, 1):  # one cell per step: a graph thousands of nodes deep
        h, c = F.lstm_cell(gates[t], (h, c), Tensor(np.eye(4 * hidden, dtype=np.float32)), w_hh)
    h.sum().backward()
    assert np.isfinite(w_hh.grad.data).all() and w_hh.grad.dtype == np.float32


# ------------------------------------------------------------------------------------------------------ errors
def _lstm_tensors(**shapes):
    default = {"x": (2, 3), "h": (2, 4), "c": (2, 4), "w_ih": (16, 3), "w_hh": (16, 4), "b_ih": (16,), "b_hh": (16,)}
    default.update(shapes)
    return {name: Tensor(np.zeros(shape)) for name, shape in default.items()}


@pytest.mark.parametrize("shapes, message", [
    ({"x": (2, 3, 1)}, r"lstm_cell: expected input of shape \(batch, 3\) or \(3,\), found a 3-D input"),
    ({"x": (2, 5)}, r"lstm_cell: input has feature size 5 .* expects input_size 3"),
    ({"h": (2, 5)}, r"lstm_cell: expected hx of shape \(2, 4\) .* found \(2, 5\)"),
    ({"c": (3, 4)}, r"lstm_cell: expected cx of shape \(2, 4\) .* found \(3, 4\)"),
    ({"w_hh": (12, 4)}, r"lstm_cell: expected w_hh of shape \(4 \* hidden_size, hidden_size\), found \(12, 4\)"),
    ({"w_ih": (12, 3)}, r"lstm_cell: expected w_ih of shape \(16, input_size\) .* found \(12, 3\)"),
    ({"b_ih": (12,)}, r"lstm_cell: expected b_ih of shape \(16,\), found \(12,\)"),
])
def test_lstm_cell_names_expected_and_found_shapes(shapes, message):
    t = _lstm_tensors(**shapes)
    with pytest.raises(ValueError, match=message):
        F.lstm_cell(t["x"], (t["h"], t["c"]), t["w_ih"], t["w_hh"], t["b_ih"], t["b_hh"])


def test_cell_errors_for_gru_and_rnn_and_bad_state_types():
    x, h = Tensor(np.zeros((2, 3))), Tensor(np.zeros((2, 4)))
    with pytest.raises(ValueError, match=r"gru_cell: expected hx of shape \(2, 4\) .* found \(4,\)"):
        F.gru_cell(x, Tensor(np.zeros(4)), Tensor(np.zeros((12, 3))), Tensor(np.zeros((12, 4))))
    with pytest.raises(ValueError, match=r"rnn_tanh_cell: give both biases or neither"):
        F.rnn_tanh_cell(x, h, Tensor(np.zeros((4, 3))), Tensor(np.zeros((4, 4))), Tensor(np.zeros(4)))
    with pytest.raises(TypeError, match=r"lstm_cell: hx must be a pair"):
        F.lstm_cell(x, h, Tensor(np.zeros((16, 3))), Tensor(np.zeros((16, 4))))
    with pytest.raises(ValueError, match=r"lstm_sequence: expected input_gates of shape \(seq_len, batch, 16\), "
                                         r"found \(5, 2, 12\)"):
        F.lstm_sequence(Tensor(np.zeros((5, 2, 12))), (h, h), Tensor(np.zeros((16, 4))))
    with pytest.raises(ValueError, match=r"lstm_sequence: expected c0 of shape \(2, 4\), found \(1, 4\)"):
        F.lstm_sequence(Tensor(np.zeros((5, 2, 16))), (h, Tensor(np.zeros((1, 4)))), Tensor(np.zeros((16, 4))))
