"""Every fused-kernel wrapper passes its kernel the arguments the CUDA signature declares, checked on the CPU.

A raw CUDA kernel receives its arguments as bytes: one too many, one missing, or an int64 where the kernel reads
a 32-bit int is not an error CuPy can raise, it is garbage on the GPU. So each wrapper of
:mod:`tinydl.kernels.cuda` is called here with NumPy arrays, with the launch intercepted: the arguments are checked
one by one against the kernel's C parameter list, parsed from the source (arrays for pointers, of the element type
the pointer names; NumPy scalars of the exact C type for scalars). No maths is emulated: the outputs are never
computed, only the contract between Python and CUDA is.
"""
import contextlib
import re

import numpy as np
import pytest

from tinydl.kernels.cuda import (activation, build, dropout, im2col, normalization, optim, pooling, recurrent,
                                 softmax)
from tinydl.kernels.geometry import Conv2dGeometry, Pool2dGeometry

MODULES = [activation, dropout, im2col, normalization, optim, pooling, recurrent, softmax]
C_SCALARS = {"long long": np.int64, "int": np.int32}
C_POINTERS = {"float": np.float32, "double": np.float64, "int": np.int32, "long long": np.int64}


def signatures(family, dtype):
    """Kernel name -> [C type of each parameter], from the complete source (macros expanded)."""
    source = build.source_for(family, dtype).replace("\\\n", " ")
    macros = dict(re.findall(r"#define (\w+) (long long .*)", source))
    table = {}
    for name, params in re.findall(r'extern "C" __global__ void (\w+)\(([^)]*)\)', source):
        for macro, expansion in macros.items():
            params = re.sub(rf"\b{macro}\b", expansion, params)
        types = [" ".join(p.replace("const", "").split()[:-1]).replace(" *", "*") for p in params.split(",")]
        table[name] = [t.replace("real", build.REAL_TYPES[dtype]) for t in types]
    return table


class Launches:
    """Stands in for the compiled kernels: records each launch and checks it against the signature."""

    def __init__(self):
        self.launched = []

    def kernel(self, family, dtype, name):
        return (family, dtype, name)

    def run(self, function, blocks, threads, args):
        family, dtype, name = function
        expected = signatures(family, dtype)[name]
        assert len(args) == len(expected), f"{name}: {len(args)} arguments for {len(expected)} parameters"
        for position, (value, c_type) in enumerate(zip(args, expected)):
            where = f"{name} argument {position} ({c_type})"
            if c_type.endswith("*"):
                assert isinstance(value, np.ndarray) and value.ndim > 0, where
                assert value.dtype == C_POINTERS[c_type[:-1]], f"{where}: array of {value.dtype}"
            else:
                wanted = C_POINTERS[c_type] if c_type in ("float", "double") else C_SCALARS[c_type]
                assert type(value) is wanted, f"{where}: got {type(value).__name__}"
        assert blocks >= 1 and threads in (build.THREADS, build.ROW_THREADS)
        self.launched.append(name)


@pytest.fixture
def launches(monkeypatch):
    recorder = Launches()
    empty = lambda like, shape=None, dtype=None: np.empty(like.shape if shape is None else shape,  # noqa: E731
                                                          like.dtype if dtype is None else dtype)
    for module in MODULES:
        for name, replacement in (("kernel", recorder.kernel), ("empty", empty),
                                  ("on_device", lambda like: contextlib.nullcontext())):
            if hasattr(module, name):
                monkeypatch.setattr(module, name, replacement)
    monkeypatch.setattr(build, "_run", recorder.run)
    return recorder


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_every_wrapper_launches_its_kernels_with_the_declared_arguments(launches, dtype):
    rng = np.random.default_rng(0)

    def array(*shape, kind=dtype):
        return rng.standard_normal(shape).astype(kind)

    batch, hidden = 3, 4
    activation.gelu_forward(array(5, 6))
    activation.gelu_backward(array(5, 6), array(5, 6))
    dropout.dropout_forward(array(5, 6), array(5, 6, kind=np.float32), 0.25)
    softmax.softmax_forward(array(4, 7))
    softmax.log_softmax_backward(array(4, 7), array(4, 7))
    softmax.masked_softmax_(array(2, 3, 4, 7))
    losses, log_normaliser = softmax.cross_entropy_forward(array(4, 7), np.array([0, 3, 6, 1]), array(4), 0.0)
    softmax.cross_entropy_backward(array(4, 7), np.array([0, 3, 6, 1]), array(4), array(4), log_normaliser,
                                   dtype(0.5))
    x_hat, mean, var, inv_std = normalization.layer_norm_forward(array(2, 3, 8), 1, 1e-5)
    normalization.layer_norm_backward(x_hat, inv_std, array(2, 3, 8), 1)
    recurrent.lstm_pointwise(array(batch, 4 * hidden), array(batch, hidden))
    recurrent.lstm_pointwise_backward(array(batch, 4 * hidden), *(array(batch, hidden) for _ in range(4)))
    recurrent.gru_gates(array(batch, 3 * hidden), array(batch, 3 * hidden), array(batch, hidden))
    recurrent.gru_gates_backward(array(batch, 3 * hidden), array(batch, 3 * hidden), array(batch, hidden),
                                 array(batch, hidden))
    for hidden_n in (array(batch, hidden), None):
        recurrent.gru_pointwise(array(batch, 3 * hidden), array(batch, 3 * hidden), array(batch, hidden),
                                array(batch, 3 * hidden), hidden_n, array(batch, hidden))
    recurrent.gru_pointwise_backward(array(batch, 3 * hidden), array(batch, hidden), array(batch, hidden),
                                     array(batch, hidden), array(batch, 3 * hidden), array(batch, 3 * hidden))
    for v_max in (array(6, 5), None):
        optim.adam_step(array(6, 5), array(6, 5), array(6, 5), array(6, 5), v_max, lr=1e-3, beta1=0.9, beta2=0.999,
                        eps=1e-8, weight_decay=0.0, step_size=1e-3, bias_correction2_sqrt=0.5, decoupled=True,
                        maximize=False)
    optim.sgd_momentum_step(array(6, 5), array(6, 5), array(6, 5), lr=0.1, momentum=0.9, dampening=0.0,
                            weight_decay=0.0, first_step=True, nesterov=False, maximize=False)
    pool = Pool2dGeometry((2, 2), (2, 2), (1, 1), True)
    y, argmax = pooling.max_pool2d_forward(array(2, 3, 7, 9), pool)
    pooling.max_pool2d_scatter(array(*y.shape), argmax, (2, 3, 7, 9), pool)
    conv = Conv2dGeometry((2, 1), ((1, 1), (2, 2)), (1, 2), 2)
    cols = np.empty((2, 4, 5, 2, 3, 3, 2), dtype)                   # (n, OH, OW, groups, kh, kw, Cg)
    x = array(2, 4, 7, 7)
    im2col.im2col_nchw(x, conv, cols)
    im2col.col2im_nchw(cols.transpose(0, 1, 2, 3, 5, 4, 6).copy().transpose(0, 1, 2, 3, 5, 4, 6), conv,
                       np.empty_like(x))
    every_kernel = {name for family in build.SOURCES for name in signatures(family, "float32")}
    assert set(launches.launched) == every_kernel
