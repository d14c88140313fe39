"""The bad-input catalogue: for every public op of ``tinydl.functional`` and every public Module class of
``tinydl.nn``, at least one mistake a learner makes, the exception it must raise, and what its message must say.

A case names its target (``F.<op>`` or ``nn.<Class>``), a callable that makes the mistake, the expected exception
type and regexes that must all be found in the message (searched case-insensitively): the op's or module's name
and the offending shapes, dtypes, devices or values. A case whose target does not yet give such an error is
written anyway and carries ``xfail``: the reason says what is wrong, and the strict xfail turns into a failure
the day the owner fixes it, so that the mark is removed.
"""
from __future__ import annotations

import dataclasses
import re
from typing import Any, Callable

import numpy as np

import tinydl
import tinydl.functional as F
from tinydl import nn


@dataclasses.dataclass
class ErrorCase:
    target: str                      # "F.add", "nn.Linear"
    provoke: Callable[[], Any]
    exception: type[BaseException]
    patterns: tuple[str, ...]
    xfail: str | None = None         # why the target does not give a good error yet
    label: str = ""                  # distinguishes several cases of one target

    @property
    def id(self) -> str:
        return f"{self.target}-{self.label}" if self.label else self.target


def shape(*sizes: int) -> str:
    """A regex for a shape as messages print it: (2, 3), [2, 3], (3,) ..."""
    inner = r",\s*".join(str(s) for s in sizes)
    return r"[\(\[]" + inner + (r",?" if len(sizes) == 1 else "") + r"[\)\]]"


def t(*sizes: int, dtype: Any = np.float32, requires_grad: bool = False, fill: float | None = None
      ) -> tinydl.Tensor:
    """A tensor of the given shape (random normal values, or ``fill``)."""
    rng = np.random.default_rng(sum(sizes) + len(sizes))
    data = rng.standard_normal(sizes) if fill is None else np.full(sizes, fill)
    return tinydl.Tensor(np.asarray(data).astype(dtype), requires_grad=requires_grad)


def ints(*values: int) -> tinydl.Tensor:
    return tinydl.Tensor(np.array(values, dtype=np.int64))


CASES: list[ErrorCase] = []


def case(target: str, provoke: Callable[[], Any], exception: type[BaseException], *patterns: str,
         xfail: str | None = None, label: str = "", also: tuple[str, ...] = ()) -> None:
    """Add a case; the message must name the target (or one of the ``also`` names, e.g. the functional op a
    module calls) and match every pattern."""
    names = "|".join(re.escape(name) for name in (target.split(".", 1)[1],) + also)
    CASES.append(ErrorCase(target, provoke, exception, (names,) + patterns, xfail, label))


# ------------------------------------------------------------------------------- elementwise: binary, shapes
for _name in ("add", "sub", "mul", "div", "pow"):
    case(f"F.{_name}", lambda op=getattr(F, _name): op(t(2, 3), t(4)), ValueError, shape(2, 3), shape(4,),
         label="shapes")
for _name in ("add", "mul"):
    case(f"F.{_name}", lambda op=getattr(F, _name): op(t(3), t(3, dtype=np.float64)), TypeError, "float32",
         "float64", label="dtypes")
for _name in ("maximum", "minimum"):
    case(f"F.{_name}", lambda op=getattr(F, _name): op(t(2, 3), t(4)), ValueError, shape(2, 3), shape(4,))
case("F.where", lambda: F.where(t(3).data > 0, t(4), t(4)), ValueError, shape(3,), shape(4,))
case("F.clamp", lambda: F.clamp(t(3)), ValueError, "min", "max")

# ---------------------------------------------------------------------------------- elementwise: unary
for _name in ("neg", "exp", "log", "sqrt", "abs", "erf", "tanh", "sigmoid", "relu", "leaky_relu", "gelu",
              "silu", "clone"):
    case(f"F.{_name}", lambda op=getattr(F, _name): op(None), TypeError, "NoneType|None",
         label="none")
case("F.sign", lambda: F.sign(None), TypeError, "NoneType|None")
case("F.gelu", lambda: F.gelu(t(3), approximate="fast"), ValueError, "approximate", "'fast'", label="mode")
case("F.cast", lambda: F.cast(t(3), "float99"), TypeError, "float99")
case("F.to_device", lambda: F.to_device(t(3), "tpu"), ValueError, "'tpu'")

# ----------------------------------------------------------------------------------------- comparisons
for _name in ("eq", "ne", "lt", "le", "gt", "ge", "logical_and", "logical_or"):
    case(f"F.{_name}", lambda op=getattr(F, _name): op(t(2, 3), t(4)), ValueError, shape(2, 3), shape(4,))
case("F.logical_not", lambda: F.logical_not(object()), TypeError, "object")

# ---------------------------------------------------------------------------------------------- reductions
for _name in ("sum", "mean", "var", "logsumexp"):
    case(f"F.{_name}", lambda op=getattr(F, _name): op(t(2, 3), 2), (IndexError, ValueError), r"\b2\b",
         shape(2, 3) + "|2 dim|dimensions?", label="dim")
for _name in ("max", "min", "argmax", "argmin"):
    case(f"F.{_name}", lambda op=getattr(F, _name): op(t(2, 3), 5), (IndexError, ValueError), r"\b5\b",
         label="dim")
    case(f"F.{_name}", lambda op=getattr(F, _name): op(t(0, 3)), ValueError, shape(0, 3), label="empty")
case("F.mean", lambda: F.mean(ints(1, 2)), TypeError, "int64", label="dtype")
case("F.broadcast_to", lambda: F.broadcast_to(t(3), (4,)), ValueError, shape(3,), shape(4,))
case("F.sum_to", lambda: F.sum_to(t(3), (4,)), ValueError, shape(3,), shape(4,))
case("F.softmax", lambda: F.softmax(t(2, 3), 2), (IndexError, ValueError), r"\b2\b")
case("F.log_softmax", lambda: F.log_softmax(t(2, 3), -3), (IndexError, ValueError), r"-3")

# ---------------------------------------------------------------------------------------------------- shape
case("F.reshape", lambda: F.reshape(t(2, 3), (4, 2)), ValueError, shape(4, 2), shape(2, 3))
case("F.view", lambda: F.view(t(2, 3), (5,)), ValueError, shape(5,), shape(2, 3))
case("F.transpose", lambda: F.transpose(t(2, 3), 0, 2), (IndexError, ValueError), r"\b2\b")
case("F.permute", lambda: F.permute(t(2, 3), (0, 0)), ValueError, shape(0, 0), shape(2, 3))
case("F.squeeze", lambda: F.squeeze(t(2, 3), 4), (IndexError, ValueError), r"\b4\b")
case("F.unsqueeze", lambda: F.unsqueeze(t(2, 3), 4), (IndexError, ValueError), r"\b4\b")
case("F.flatten", lambda: F.flatten(t(2, 3, 4), 2, 1), ValueError, r"\b2\b", r"\b1\b")
case("F.expand", lambda: F.expand(t(2, 3), (2, 4)), ValueError, shape(2, 3), shape(2, 4))
case("F.index", lambda: F.index(t(2, 3), (0, 5)), IndexError, r"\b5\b", shape(2, 3))
case("F.cat", lambda: F.cat([t(2, 3), t(2, 4)], 0), ValueError, shape(2, 3), shape(2, 4))
case("F.cat", lambda: F.cat([t(2, 3), t(2, 3, dtype=np.float64)]), TypeError, "float32", "float64",
     label="dtypes")
case("F.stack", lambda: F.stack([t(2, 3), t(3, 2)]), ValueError, shape(2, 3), shape(3, 2))
case("F.split", lambda: F.split(t(5, 2), [2, 2]), ValueError, r"\[2, 2\]", r"\b5\b")
case("F.chunk", lambda: F.chunk(t(4), 0), ValueError, r"\b0\b")
case("F.pad", lambda: F.pad(t(2, 3), (1, 1, 1)), ValueError, shape(1, 1, 1), shape(2, 3))

# --------------------------------------------------------------------------------------------------- linalg
case("F.matmul", lambda: F.matmul(t(2, 3), t(4, 5)), ValueError, shape(2, 3), shape(4, 5))
case("F.matmul", lambda: F.matmul(t(2, 3), t(3, 2, dtype=np.float64)), TypeError, "float32", "float64",
     label="dtypes")
case("F.linear", lambda: F.linear(t(2, 3), t(4, 5)), ValueError, shape(2, 3), shape(4, 5))

# ----------------------------------------------------------------------------------------------------- loss
case("F.cross_entropy", lambda: F.cross_entropy(t(4, 3), ints(0, 1, 2)), ValueError, shape(4, 3), shape(3,))
case("F.cross_entropy", lambda: F.cross_entropy(t(2, 3), ints(0, 7)), IndexError, r"\b7\b", r"\b3 classes",
     label="range")
case("F.cross_entropy", lambda: F.cross_entropy(t(2, 3), t(2)), TypeError, "float32", shape(2,),
     label="float-target")
case("F.nll_loss", lambda: F.nll_loss(t(4, 3), ints(0, 1)), ValueError, shape(4, 3), shape(2,))
case("F.mse_loss", lambda: F.mse_loss(t(2, 3), t(4)), ValueError, shape(2, 3), shape(4,))
case("F.mse_loss", lambda: F.mse_loss(t(3), t(3, dtype=np.float64)), TypeError, "float32", "float64",
     label="dtypes")
case("F.binary_cross_entropy_with_logits", lambda: F.binary_cross_entropy_with_logits(t(2, 3), t(3)),
     ValueError, shape(2, 3), shape(3,))

# ------------------------------------------------------------------------------------------------ recurrent
case("F.rnn_tanh_cell", lambda: F.rnn_tanh_cell(t(2, 3), t(2, 4), t(4, 5), t(4, 4)), ValueError, r"\b3\b",
     shape(4, 5))
case("F.rnn_relu_cell", lambda: F.rnn_relu_cell(t(2, 3), t(2, 5), t(4, 3), t(4, 4)), ValueError, shape(2, 5))
case("F.gru_cell", lambda: F.gru_cell(t(2, 3), t(2, 4), t(12, 3), t(8, 4)), ValueError, shape(8, 4))
case("F.lstm_cell", lambda: F.lstm_cell(t(2, 3), t(2, 4), t(16, 3), t(16, 4)), TypeError, "pair",
     "Tensor")
case("F.lstm_cell", lambda: F.lstm_cell(t(2, 5), (t(2, 4), t(2, 4)), t(16, 3), t(16, 4)), ValueError,
     shape(2, 5), r"\b3\b", label="shapes")
case("F.lstm_sequence", lambda: F.lstm_sequence(t(5, 2, 12), (t(2, 4), t(2, 4)), t(16, 4)), ValueError,
     shape(5, 2, 12), r"\b16\b")
case("F.lstm_layer", lambda: F.lstm_layer(t(5, 2, 3), (t(2, 4), t(2, 4)), t(16, 6), t(16, 4)), ValueError,
     shape(5, 2, 3), shape(16, 6))
case("F.lstm_layer", lambda: F.lstm_layer(t(5, 2, 3), (t(2, 4), t(2, 4)), t(12, 3), t(16, 4)), ValueError,
     shape(5, 2, 12), r"\b16\b", label="gates")
case("F.lstm_layer", lambda: F.lstm_layer(t(5, 2, 3), (t(2, 4), t(2, 4)), t(16, 3), t(16, 4), t(12)),
     ValueError, shape(12,), label="bias")
case("F.lstm_layer", lambda: F.lstm_layer(t(5, 2, 3), (t(2, 4), t(2, 4, dtype=np.float64)), t(16, 3), t(16, 4)),
     TypeError, "lstm_layer", "float32", "float64", label="dtypes")
case("F.lstm_sequence", lambda: F.lstm_sequence(t(5, 2, 16), (t(2, 4), t(2, 4)), t(16, 4, dtype=np.float64)),
     TypeError, "lstm_sequence", "float32", "float64", label="dtypes")
case("F.lstm_cell", lambda: F.lstm_cell(t(2, 3), (t(2, 4), t(2, 4)), t(16, 3, dtype=np.float64), t(16, 4)),
     TypeError, "lstm_cell", "float32", "float64", label="dtypes")
case("F.gru_sequence", lambda: F.gru_sequence(t(5, 2, 12), t(2, 4), t(12, 4), t(12, dtype=np.float64)),
     TypeError, "gru_sequence", "float32", "float64", label="dtypes")
case("F.rnn_sequence", lambda: F.rnn_sequence(t(5, 2, 4), t(2, 4, dtype=np.float64), t(4, 4)), TypeError,
     "rnn_sequence", "float32", "float64", label="dtypes")
case("F.gru_sequence", lambda: F.gru_sequence(t(5, 2, 10), t(2, 4), t(12, 4)), ValueError, shape(5, 2, 10),
     r"\b12\b")
case("F.gru_sequence", lambda: F.gru_sequence(t(5, 2, 12), t(2, 4), t(12, 4), t(9)), ValueError, shape(9,),
     label="bias")
case("F.rnn_sequence", lambda: F.rnn_sequence(t(5, 2, 4), t(3, 4), t(4, 4)), ValueError, shape(3, 4),
     shape(2, 4))
case("F.rnn_sequence", lambda: F.rnn_sequence(t(5, 2, 4), t(2, 4), t(4, 4), "sigmoid"), ValueError, "sigmoid",
     label="nonlinearity")

# ------------------------------------------------------------------------------------------------ attention
case("F.scaled_dot_product_attention", lambda: F.scaled_dot_product_attention(t(2, 4, 8), t(2, 5, 6),
                                                                              t(2, 5, 6)),
     ValueError, shape(2, 4, 8), shape(2, 5, 6))
case("F.scaled_dot_product_attention", lambda: F.scaled_dot_product_attention(
    t(4, 8), t(5, 8), t(5, 8), attn_mask=t(3, 5)), ValueError, shape(3, 5), shape(4, 5), label="mask")

case("F.scaled_dot_product_attention", lambda: F.scaled_dot_product_attention(
    t(1, 4, 3, 8), t(1, 3, 5, 8), t(1, 3, 5, 8), enable_gqa=True), ValueError, shape(1, 4, 3, 8),
     shape(1, 3, 5, 8), "enable_gqa", label="gqa")
case("F.apply_rotary", lambda: F.apply_rotary(t(2, 4, 5), t(4, 5), t(4, 5)), ValueError, shape(2, 4, 5), "even")
case("F.apply_rotary", lambda: F.apply_rotary(t(2, 4, 6), t(3, 6), t(3, 6)), ValueError, shape(2, 4, 6),
     shape(3, 6), label="tables")

# ------------------------------------------------------------------------------------------- normalisation
case("F.rms_norm", lambda: F.rms_norm(t(2, 3), t(4)), ValueError, shape(4,), shape(2, 3))
case("F.batch_norm", lambda: F.batch_norm(t(4, 3), t(5), t(5)), ValueError, shape(5,), shape(4, 3))
case("F.layer_norm", lambda: F.layer_norm(t(2, 3), (4,)), ValueError, shape(4,), shape(2, 3))
case("F.dropout", lambda: F.dropout(t(3), p=1.5), ValueError, r"1\.5")
case("F.embedding", lambda: F.embedding(ints(0, 9), t(5, 2)), IndexError, r"\b9\b", r"\b5 embeddings")
case("F.embedding", lambda: F.embedding(t(3), t(5, 2)), TypeError, "float32", label="dtype")

# -------------------------------------------------------------------------- convolution and pooling (issue 3)
_F_OPTIONAL = {
    "conv2d": lambda: case("F.conv2d", lambda: F.conv2d(t(1, 3, 8, 8), t(4, 2, 3, 3)), ValueError,
                           shape(1, 3, 8, 8), shape(4, 2, 3, 3)),
    "max_pool2d": lambda: case("F.max_pool2d", lambda: F.max_pool2d(t(1, 2, 2, 2), 3), ValueError,
                               r"3 ?x ?3|\(3, 3\)", r"2 ?x ?2|\(2, 2\)"),
    "avg_pool2d": lambda: case("F.avg_pool2d", lambda: F.avg_pool2d(t(2, 8, 8), 2), ValueError,
                               shape(2, 8, 8)),
    "adaptive_avg_pool2d": lambda: case("F.adaptive_avg_pool2d", lambda: F.adaptive_avg_pool2d(t(1, 2, 4, 4), 0),
                                        ValueError, r"\b0\b"),
}
for _name, _add in _F_OPTIONAL.items():
    if _name in F.__all__:
        _add()


def _forced_winograd_strided_conv() -> None:
    """A stride-2 convolution with the algorithm forced to Winograd (which computes stride 1 only)."""
    from tinydl.kernels.conv import set_conv_algorithm
    previous = set_conv_algorithm("winograd")
    try:
        F.conv2d(t(1, 3, 9, 9), t(4, 3, 3, 3), stride=2, padding=1)
    finally:
        set_conv_algorithm(previous)


case("F.conv2d", _forced_winograd_strided_conv, ValueError, "winograd", shape(1, 3, 9, 9), shape(4, 3, 3, 3),
     r"stride \(2, 2\)", label="forced-winograd")


# ================================================================================================ modules
def _module(name: str, provoke: Callable[[], Any], exception: type[BaseException], *patterns: str,
            xfail: str | None = None, label: str = "", also: tuple[str, ...] = ()) -> None:
    case(f"nn.{name}", provoke, exception, *patterns, xfail=xfail, label=label, also=also)


def _load_mismatched_state() -> None:
    model = nn.Linear(3, 2)
    state = model.state_dict()
    state["weight"] = t(3, 3)
    model.load_state_dict(state)


def _load_foreign_keys() -> None:
    model = nn.Linear(3, 2)
    state = model.state_dict()
    del state["bias"]
    state["scale"] = t(2)
    model.load_state_dict(state)


_module("Module", _load_mismatched_state, (ValueError, RuntimeError), "weight", shape(3, 3), shape(2, 3),
        also=("load_state_dict",))
_module("Module", _load_foreign_keys, (KeyError, ValueError, RuntimeError), "missing.*bias", "unexpected.*scale",
        also=("load_state_dict",), label="keys")
_module("Linear", lambda: nn.Linear(3, 2)(t(4, 5)), ValueError, shape(4, 5), r"\b3\b")
_module("Identity", lambda: nn.Identity()(t(2), t(3)), TypeError, "positional argument")
_module("Flatten", lambda: nn.Flatten(start_dim=3)(t(2, 3)), (IndexError, ValueError), r"\b3\b")
_module("Conv2d", lambda: nn.Conv2d(3, 4, 3)(t(1, 2, 8, 8)), ValueError, shape(1, 2, 8, 8), r"\b3\b")
_module("MaxPool2d", lambda: nn.MaxPool2d(2)(t(2, 8)), ValueError, shape(2, 8), also=("max_pool2d",))
_module("AvgPool2d", lambda: nn.AvgPool2d(2)(t(2, 8)), ValueError, shape(2, 8), also=("avg_pool2d",))
_module("AdaptiveAvgPool2d", lambda: nn.AdaptiveAvgPool2d(2)(t(2, 8)), ValueError, shape(2, 8),
        also=("adaptive_avg_pool2d",))
_module("BatchNorm1d", lambda: nn.BatchNorm1d(3)(t(4, 5)), ValueError, shape(4, 5), r"\b3\b")
_module("BatchNorm2d", lambda: nn.BatchNorm2d(3)(t(2, 4, 5, 5)), ValueError, shape(2, 4, 5, 5), r"\b3\b")
_module("LayerNorm", lambda: nn.LayerNorm(4)(t(2, 3)), ValueError, shape(2, 3), shape(4,), also=("layer_norm",))
_module("RMSNorm", lambda: nn.RMSNorm(4)(t(2, 3)), ValueError, shape(2, 3), shape(4,), also=("rms_norm",))
_module("SwiGLU", lambda: nn.SwiGLU(4, 8)(t(2, 3)), ValueError, shape(2, 3), r"\b4\b", also=("linear",))
_module("Dropout", lambda: nn.Dropout(p=-0.1), ValueError, r"-0\.1")
_module("ReLU", lambda: nn.ReLU()(None), TypeError, "NoneType|None")
_module("LeakyReLU", lambda: nn.LeakyReLU()(None), TypeError, "NoneType|None", also=("leaky_relu",))
_module("GELU", lambda: nn.GELU(approximate="fast"), ValueError, "'fast'")
_module("Tanh", lambda: nn.Tanh()(None), TypeError, "NoneType|None")
_module("Sigmoid", lambda: nn.Sigmoid()(None), TypeError, "NoneType|None")
_module("Softmax", lambda: nn.Softmax(dim=2)(t(2, 3)), (IndexError, ValueError), r"\b2\b")
_module("LogSoftmax", lambda: nn.LogSoftmax(dim=2)(t(2, 3)), (IndexError, ValueError), r"\b2\b",
        also=("log_softmax",))
_module("CrossEntropyLoss", lambda: nn.CrossEntropyLoss()(t(4, 3), ints(0, 1)), ValueError, shape(4, 3),
        shape(2,), also=("cross_entropy",))
_module("NLLLoss", lambda: nn.NLLLoss(reduction="average"), ValueError, "'average'")
_module("MSELoss", lambda: nn.MSELoss()(t(3), t(3, dtype=np.float64)), TypeError, "float32", "float64",
        also=("mse_loss",))
_module("Embedding", lambda: nn.Embedding(5, 2)(ints(0, 5)), IndexError, r"\b5\b")
_module("RNNCell", lambda: nn.RNNCell(3, 4)(t(2, 5)), ValueError, shape(2, 5), r"\b3\b", also=("rnn_tanh_cell",))
_module("LSTMCell", lambda: nn.LSTMCell(3, 4)(t(2, 5)), ValueError, shape(2, 5), r"\b3\b", also=("lstm_cell",))
_module("GRUCell", lambda: nn.GRUCell(3, 4)(t(2, 5)), ValueError, shape(2, 5), r"\b3\b", also=("gru_cell",))
_module("RNN", lambda: nn.RNN(3, 4)(t(6, 2, 5)), ValueError, shape(6, 2, 5), r"\b3\b")
_module("LSTM", lambda: nn.LSTM(3, 4)(t(6, 2, 5)), ValueError, shape(6, 2, 5), r"\b3\b")
_module("GRU", lambda: nn.GRU(3, 4)(t(6, 2, 5)), ValueError, shape(6, 2, 5), r"\b3\b")
_module("MultiheadAttention", lambda: nn.MultiheadAttention(6, 4), ValueError, r"\b6\b", r"\b4\b")
_module("MultiheadAttention", lambda: nn.MultiheadAttention(8, 2)(t(5, 2, 6), t(5, 2, 6), t(5, 2, 6)),
        ValueError, shape(5, 2, 6), r"\b8\b", label="input")
_module("TransformerEncoderLayer", lambda: nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0)(t(5, 2, 6)),
        ValueError, shape(5, 2, 6), r"\b8\b", also=("MultiheadAttention",))
_module("TransformerDecoderLayer", lambda: nn.TransformerDecoderLayer(8, 2, 16, dropout=0.0)(
    t(5, 2, 8), t(4, 2, 6)), ValueError, shape(4, 2, 6), r"\b8\b", also=("MultiheadAttention",))
_module("TransformerEncoder", lambda: nn.TransformerEncoder(nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0), 2)(
    t(5, 2, 6)), ValueError, shape(5, 2, 6), r"\b8\b", also=("MultiheadAttention",))
_module("SinusoidalPositionalEncoding", lambda: nn.SinusoidalPositionalEncoding(4, max_len=3)(t(5, 1, 4)),
        ValueError, r"\b5\b", r"max_len|\b3\b")
_module("LearnedPositionalEncoding", lambda: nn.LearnedPositionalEncoding(3, 4)(t(5, 1, 4)), ValueError,
        r"\b5\b", r"max_len|\b3\b")
_module("Sequential", lambda: nn.Sequential(nn.ReLU(), "relu"), TypeError, "str")
_module("ModuleList", lambda: nn.ModuleList([nn.ReLU()]).append(3), TypeError, "int")
_module("ModuleDict", lambda: nn.ModuleDict({"a": 3}), TypeError, "int")


# ------------------------------------------------------------------------------------------------ devices
# (on the GPU, or on the CuPy double of tests/cupy_double where no GPU is present: see tests/conftest.py)
def _gpu(*sizes: int) -> tinydl.Tensor:
    return t(*sizes).to("cuda")


def _device_array(*sizes: int) -> Any:
    return _gpu(*sizes).data


case("F.add", lambda: F.add(t(3), _gpu(3)), RuntimeError, "cpu", "cuda:0", label="devices")
case("F.add", lambda: t(3) + _device_array(3), RuntimeError, "cpu", "cuda:0", label="device-array")
case("F.add", lambda: _gpu(3) + np.ones(3, dtype=np.float32), RuntimeError, "cpu", "cuda:0",
     label="host-array-into-gpu")
case("F.matmul", lambda: F.matmul(t(2, 3), _gpu(3, 2)), RuntimeError, "cpu", "cuda:0", label="devices")
case("F.cat", lambda: F.cat([t(3), _gpu(3)]), RuntimeError, "cpu", "cuda:0", label="devices")
case("F.where", lambda: F.where(t(3).data > 0, _gpu(3), _gpu(3)), RuntimeError, "condition", "cpu", "cuda:0",
     label="devices")
case("F.embedding", lambda: F.embedding(ints(0, 1), _gpu(3, 2)), RuntimeError, "cpu", "cuda:0", label="devices")
case("F.cross_entropy", lambda: F.cross_entropy(_gpu(2, 3), ints(0, 1)), RuntimeError, "cpu", "cuda:0",
     label="devices")
case("F.scaled_dot_product_attention",
     lambda: F.scaled_dot_product_attention(t(2, 2), _gpu(2, 2), t(2, 2)), RuntimeError, "cpu", "cuda:0",
     label="devices")
case("nn.Linear", lambda: nn.Linear(3, 2)(_gpu(3)), RuntimeError, "cpu", "cuda:0", label="devices",
     also=("linear",))


# ------------------------------------------------------------------ in-place methods and checkpoints (issue 13)
def _modify_after_saving() -> None:
    x, w = t(3), t(3, requires_grad=True)
    loss = (w * x).sum()
    x.add_(1.0)
    loss.backward()


def _load_hostile_checkpoint() -> None:
    import json
    import tempfile
    import zipfile
    header = b"{'descr': '<f4', 'fortran_order': False, 'shape': (100000, 100000)}\n"
    with tempfile.TemporaryDirectory() as folder:
        path = f"{folder}/hostile.tdl"
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("manifest.json", json.dumps({"format": "tinydl-checkpoint", "version": 1,
                                                          "root": {"type": "ndarray", "array": "a.npy"}}))
            archive.writestr("a.npy", b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header)
        tinydl.load(path)


case("Tensor.add_", lambda: nn.Linear(2, 2).weight.add_(1.0), RuntimeError, "parameter 'weight'", shape(2, 2),
     "no_grad")
case("Tensor.add_", lambda: ints(1, 2).add_(0.5), TypeError, "float32", "int64", label="dtype")
case("Tensor.mul_", lambda: t(3).expand(2, 3).mul_(2.0), RuntimeError, "read-only", shape(2, 3), "clone")
case("Tensor.copy_", lambda: t(3).copy_(t(4)), ValueError, shape(3,), shape(4,))
case("Tensor.setitem", lambda: t(3, requires_grad=True).__setitem__(0, 1.0), RuntimeError, "leaf", "no_grad")
case("Tensor.backward", _modify_after_saving, RuntimeError, "input 1 of mul", shape(3,), "version 0",
     "version 1", r"optimizer\.step\(\)", r"clone\(\)", also=("mul",))
case("tinydl.load", _load_hostile_checkpoint, tinydl.serialization.CheckpointError, shape(100000, 100000),
     "float32", "40000000000 bytes", "holds 0 bytes")
