"""Fused CUDA kernels for CuPy arrays, one module per family, each the fast twin of a plain array-module path.

* :mod:`.build`: compiling once per (source, dtype), the fusion test :func:`.build.can_fuse`, launching.
* :mod:`.activation`: GELU forward and backward.
* :mod:`.recurrent`: the LSTM and GRU gate maths of one step, forward and backward.
* :mod:`.optim`: Adam/AdamW and SGD-with-momentum updates in place.
* :mod:`.dropout`: the dropout mask and output in one pass.
* :mod:`.softmax`: softmax, log-softmax and cross-entropy over rows, forward and backward.
* :mod:`.normalization`: layer normalisation over rows, forward and backward.
* :mod:`.pooling`: max pooling forward (with argmax) and its gradient.
* :mod:`.im2col`: image to columns and back, straight from and to NCHW images.

Importing this package imports no CuPy; the first kernel call does (through :mod:`tinydl.backend`).
"""
from . import activation, build, dropout, im2col, normalization, optim, pooling, recurrent, softmax

__all__ = ["activation", "build", "dropout", "im2col", "normalization", "optim", "pooling", "recurrent", "softmax"]
