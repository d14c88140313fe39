"""``Tensor``: an array (NumPy or CuPy) plus what autograd needs to differentiate through it.

A Tensor holds its raw array in ``.data``. When it was produced by an op while grad mode was on and one of the
op's inputs required grad, it also remembers that op (its creator), which is how ``backward`` finds its way back.
Operators and methods delegate to :mod:`tinydl.functional`, where each op is defined once.
"""
from __future__ import annotations

from typing import Any, Iterator, Sequence

import numpy

from . import autograd, hooks, versions
from .backend import (Device, array_module_for, device, device_of, device_scope, get_array_module, is_array,
                      to_device)

__all__ = ["Tensor", "tensor", "as_tensor"]


class Tensor:
    """A node of the computation graph: ``data`` (the array), ``grad`` and ``requires_grad``."""

    __slots__ = ("data", "grad", "requires_grad", "_creator", "_index", "_versions", "__weakref__")
    __array_priority__ = 1000  # NumPy defers to Tensor's reflected operators (``2.0 * t``, ``ndarray + t``)

    def __init__(self, data: Any, requires_grad: bool = False):
        self._versions: versions.VersionCounter | None = None
        if isinstance(data, Tensor):
            self._versions = versions.counter(data)  # the same memory: one version counter
            data = data.data
        elif not is_array(data) or isinstance(data, numpy.generic):
            data = numpy.asarray(data)
        self.data = data
        self.grad: Tensor | None = None
        self._creator: autograd.Function | None = None
        self._index = 0
        self.requires_grad = False
        if requires_grad:
            self.requires_grad_(True)

    @classmethod
    def _from_array(cls, array: Any) -> "Tensor":
        """Wrap an op's raw result without validation (the hot path of every op)."""
        if type(array) is not numpy.ndarray and isinstance(array, numpy.generic):
            array = numpy.asarray(array)  # NumPy reductions return scalars; keep 0-d arrays
        tensor = cls.__new__(cls)
        tensor.data = array
        tensor.grad = None
        tensor.requires_grad = False
        tensor._creator = None
        tensor._index = 0
        tensor._versions = None
        return tensor

    def _attach(self, creator: autograd.Function, index: int) -> None:
        self.requires_grad = True
        self._creator = creator
        self._index = index

    # ----------------------------------------------------------------------------------------- properties
    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    @property
    def dtype(self) -> numpy.dtype:
        return self.data.dtype

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def size(self) -> int:
        """Number of elements (``numel()`` in PyTorch; here a property, as in NumPy)."""
        return self.data.size

    def numel(self) -> int:
        return self.data.size

    def dim(self) -> int:
        return self.data.ndim

    @property
    def device(self) -> Device:
        return device_of(self.data)

    @property
    def is_leaf(self) -> bool:
        return self._creator is None

    @property
    def _version(self) -> int:
        """How many in-place changes this tensor's memory has seen through tinydl (:mod:`tinydl.versions`)."""
        return versions.version(self)

    @property
    def T(self) -> "Tensor":
        return F.permute(self, tuple(reversed(range(self.ndim))))

    @property
    def mT(self) -> "Tensor":
        return F.transpose(self, -2, -1)

    def __len__(self) -> int:
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.shape[0]

    def __iter__(self) -> Iterator["Tensor"]:
        for index in range(len(self)):
            yield self[index]

    def __repr__(self) -> str:
        body = numpy.array2string(to_device(self.data, "cpu"), separator=", ", prefix="tensor(")
        extras = []
        if self.dtype != numpy.float32 and not numpy.issubdtype(self.dtype, numpy.integer):
            extras.append(f"dtype={self.dtype}")
        if self.device.type != "cpu":
            extras.append(f"device='{self.device}'")
        if self._creator is not None:
            extras.append(f"grad_fn={self._creator.name}")
        elif self.requires_grad:
            extras.append("requires_grad=True")
        return "tensor(" + ", ".join([body] + extras) + ")"

    def __bool__(self) -> bool:
        if self.size != 1:
            raise RuntimeError(f"the truth value of a tensor of shape {tuple(self.shape)} is ambiguous")
        return bool(self.data)

    def __hash__(self) -> int:
        return id(self)

    # --------------------------------------------------------------------------------- autograd interface
    def requires_grad_(self, requires_grad: bool = True) -> "Tensor":
        if requires_grad and self.dtype.kind not in "fc":
            raise TypeError(f"requires_grad: only floating-point tensors can require gradients, but this tensor "
                            f"has dtype {self.dtype}; convert it first, e.g. x.float()")
        if not requires_grad and self._creator is not None:
            raise RuntimeError("requires_grad_(False) on a non-leaf tensor; use .detach() instead")
        self.requires_grad = requires_grad
        return self

    def backward(self, gradient: Any = None, retain_graph: bool = False, create_graph: bool = False) -> None:
        """Accumulate d(self)/d(leaf) into ``leaf.grad`` for every leaf that requires grad.

        ``gradient`` is the upstream gradient (required unless self is a scalar); ``retain_graph`` keeps the
        graph for another backward; ``create_graph`` records the backward pass itself (higher-order gradients).
        """
        if not self.requires_grad:
            raise RuntimeError("backward: this tensor does not require grad and has no graph; did you compute it "
                               "under no_grad, or from tensors that do not require grad?")
        grads = autograd._as_grad_list([self], gradient)
        autograd.backward([self], grads, retain_graph=retain_graph, create_graph=create_graph)

    def register_hook(self, hook: Any) -> Any:
        """``hook(grad) -> Tensor | None`` runs when this tensor's gradient is complete during backward; a
        returned Tensor (same shape and dtype) replaces the gradient. Returns a handle with ``.remove()``."""
        return hooks.register_tensor_hook(self, hook)

    def retain_grad(self) -> None:
        """Keep this non-leaf's gradient in ``.grad`` after backward (leaves keep theirs anyway)."""
        hooks.retain_grad(self)

    def detach(self) -> "Tensor":
        """The same data (and version counter), cut from the graph."""
        detached = Tensor._from_array(self.data)
        detached._versions = versions.counter(self)
        return detached

    # ------------------------------------------------------------------------ in-place (tinydl.inplace)
    def add_(self, other: Any, alpha: Any = 1) -> "Tensor": return inplace.add_(self, other, alpha)
    def sub_(self, other: Any, alpha: Any = 1) -> "Tensor": return inplace.sub_(self, other, alpha)
    def mul_(self, other: Any) -> "Tensor": return inplace.mul_(self, other)
    def div_(self, other: Any) -> "Tensor": return inplace.div_(self, other)
    def clamp_(self, min: Any = None, max: Any = None) -> "Tensor": return inplace.clamp_(self, min, max)
    def copy_(self, src: Any) -> "Tensor": return inplace.copy_(self, src)
    def fill_(self, value: Any) -> "Tensor": return inplace.fill_(self, value)
    def zero_(self) -> "Tensor": return inplace.fill_(self, 0)

    # ------------------------------------------------------------------------------------ data and device
    def item(self) -> Any:
        if self.size != 1:
            raise ValueError(f"item: only one-element tensors can be converted to a Python scalar, "
                             f"got shape {tuple(self.shape)}")
        return self.data.item()

    def numpy(self) -> numpy.ndarray:
        """The data as a NumPy array: a copy from the GPU, the same memory on the CPU (so writing into it writes
        into the tensor; unlike PyTorch, tinydl does not refuse this for tensors that require grad)."""
        return to_device(self.data, "cpu")

    def tolist(self) -> Any:
        return to_device(self.data, "cpu").tolist()

    def to(self, target: Any = None, dtype: Any = None) -> "Tensor":
        """``t.to("cuda")``, ``t.to(tinydl.float64)`` or ``t.to(device, dtype)``; differentiable."""
        if target is not None:
            if isinstance(target, (str, Device)):
                result = F.to_device(self, device(target))
            else:
                result, dtype = self, target if dtype is None else dtype
        else:
            result = self
        if dtype is not None and numpy.dtype(dtype) != result.dtype:
            result = F.cast(result, numpy.dtype(dtype))
        return result

    def cpu(self) -> "Tensor":
        return self.to("cpu")

    def cuda(self, index: int = 0) -> "Tensor":
        return self.to(Device("cuda", index))

    def float(self) -> "Tensor":
        return self.to(numpy.float32)

    def double(self) -> "Tensor":
        return self.to(numpy.float64)

    def half(self) -> "Tensor":
        return self.to(numpy.float16)

    def long(self) -> "Tensor":
        return self.to(numpy.int64)

    def int(self) -> "Tensor":
        return self.to(numpy.int32)

    def bool(self) -> "Tensor":
        return self.to(numpy.bool_)

    def type_as(self, other: "Tensor") -> "Tensor":
        return self.to(other.dtype)

    def clone(self) -> "Tensor":
        return F.clone(self)

    def contiguous(self) -> "Tensor":
        return self

    # --------------------------------------------------------------------------------------- operators
    def __add__(self, other: Any) -> "Tensor": return F.add(self, other)
    def __radd__(self, other: Any) -> "Tensor": return F.add(other, self)
    def __sub__(self, other: Any) -> "Tensor": return F.sub(self, other)
    def __rsub__(self, other: Any) -> "Tensor": return F.sub(other, self)
    def __mul__(self, other: Any) -> "Tensor": return F.mul(self, other)
    def __rmul__(self, other: Any) -> "Tensor": return F.mul(other, self)
    def __truediv__(self, other: Any) -> "Tensor": return F.div(self, other)
    def __rtruediv__(self, other: Any) -> "Tensor": return F.div(other, self)
    def __pow__(self, other: Any) -> "Tensor": return F.pow(self, other)
    def __rpow__(self, other: Any) -> "Tensor": return F.pow(other, self)
    def __matmul__(self, other: Any) -> "Tensor": return F.matmul(self, other)
    def __rmatmul__(self, other: Any) -> "Tensor": return F.matmul(other, self)
    def __neg__(self) -> "Tensor": return F.neg(self)
    def __pos__(self) -> "Tensor": return self
    def __abs__(self) -> "Tensor": return F.abs(self)
    def __getitem__(self, key: Any) -> "Tensor": return F.index(self, key)
    def __eq__(self, other: Any) -> "Tensor": return F.eq(self, other)  # type: ignore[override]
    def __ne__(self, other: Any) -> "Tensor": return F.ne(self, other)  # type: ignore[override]
    def __lt__(self, other: Any) -> "Tensor": return F.lt(self, other)
    def __le__(self, other: Any) -> "Tensor": return F.le(self, other)
    def __gt__(self, other: Any) -> "Tensor": return F.gt(self, other)
    def __ge__(self, other: Any) -> "Tensor": return F.ge(self, other)
    def __invert__(self) -> "Tensor": return F.logical_not(self)
    def __and__(self, other: Any) -> "Tensor": return F.logical_and(self, other)
    def __or__(self, other: Any) -> "Tensor": return F.logical_or(self, other)

    def __setitem__(self, key: Any, value: Any) -> None:
        """``t[key] = value`` in place, recorded in the graph when it takes part in one (:mod:`tinydl.inplace`)."""
        inplace.setitem(self, _raw_key(key), value)

    # ------------------------------------------------------------------------------------------ methods
    def exp(self) -> "Tensor": return F.exp(self)
    def log(self) -> "Tensor": return F.log(self)
    def sqrt(self) -> "Tensor": return F.sqrt(self)
    def abs(self) -> "Tensor": return F.abs(self)
    def tanh(self) -> "Tensor": return F.tanh(self)
    def sigmoid(self) -> "Tensor": return F.sigmoid(self)
    def relu(self) -> "Tensor": return F.relu(self)
    def pow(self, exponent: Any) -> "Tensor": return F.pow(self, exponent)
    def clamp(self, min: Any = None, max: Any = None) -> "Tensor": return F.clamp(self, min, max)
    def maximum(self, other: Any) -> "Tensor": return F.maximum(self, other)
    def minimum(self, other: Any) -> "Tensor": return F.minimum(self, other)
    def softmax(self, dim: int) -> "Tensor": return F.softmax(self, dim)
    def log_softmax(self, dim: int) -> "Tensor": return F.log_softmax(self, dim)

    def sum(self, dim: Any = None, keepdim: bool = False) -> "Tensor": return F.sum(self, dim, keepdim)
    def mean(self, dim: Any = None, keepdim: bool = False) -> "Tensor": return F.mean(self, dim, keepdim)

    def var(self, dim: Any = None, keepdim: bool = False, correction: int = 1) -> "Tensor":
        return F.var(self, dim, keepdim=keepdim, correction=correction)

    def max(self, dim: Any = None, keepdim: bool = False) -> Any: return F.max(self, dim, keepdim)
    def min(self, dim: Any = None, keepdim: bool = False) -> Any: return F.min(self, dim, keepdim)
    def logsumexp(self, dim: Any, keepdim: bool = False) -> "Tensor": return F.logsumexp(self, dim, keepdim)
    def argmax(self, dim: Any = None, keepdim: bool = False) -> "Tensor": return F.argmax(self, dim, keepdim)
    def argmin(self, dim: Any = None, keepdim: bool = False) -> "Tensor": return F.argmin(self, dim, keepdim)
    def matmul(self, other: Any) -> "Tensor": return F.matmul(self, other)

    def reshape(self, *shape: Any) -> "Tensor": return F.reshape(self, _shape_args(shape))
    def view(self, *shape: Any) -> "Tensor": return F.view(self, _shape_args(shape))
    def transpose(self, dim0: int, dim1: int) -> "Tensor": return F.transpose(self, dim0, dim1)
    def permute(self, *dims: Any) -> "Tensor": return F.permute(self, _shape_args(dims))
    def squeeze(self, dim: Any = None) -> "Tensor": return F.squeeze(self, dim)
    def unsqueeze(self, dim: int) -> "Tensor": return F.unsqueeze(self, dim)
    def flatten(self, start_dim: int = 0, end_dim: int = -1) -> "Tensor": return F.flatten(self, start_dim, end_dim)
    def expand(self, *sizes: Any) -> "Tensor": return F.expand(self, _shape_args(sizes))
    def expand_as(self, other: "Tensor") -> "Tensor": return F.expand(self, other.shape)
    def view_as(self, other: "Tensor") -> "Tensor": return F.view(self, other.shape)
    def split(self, split_size: Any, dim: int = 0) -> tuple["Tensor", ...]: return F.split(self, split_size, dim)
    def chunk(self, chunks: int, dim: int = 0) -> tuple["Tensor", ...]: return F.chunk(self, chunks, dim)


def _shape_args(args: Sequence[Any]) -> tuple[int, ...]:
    """Accept both ``t.reshape(2, 3)`` and ``t.reshape((2, 3))``."""
    if len(args) == 1 and isinstance(args[0], (tuple, list)):
        return tuple(args[0])
    return tuple(args)


def _raw_key(key: Any) -> Any:
    if isinstance(key, Tensor):
        return key.data
    if isinstance(key, tuple):
        return tuple(k.data if isinstance(k, Tensor) else k for k in key)
    return key


_DEFAULT_FLOAT = numpy.dtype(numpy.float32)


def tensor(data: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    """Build a Tensor from a Python number or (nested) list, a NumPy/CuPy array or another Tensor (copied).

    Python floats become float32 (the default dtype), ints int64, bools bool; arrays keep their dtype.
    """
    if isinstance(data, Tensor):
        data = data.data
    xp = array_module_for(device) if device is not None else get_array_module(data)
    if hasattr(data, "dtype"):
        with device_scope(device if device is not None else data):
            array = xp.array(to_device(data, device) if device is not None else data, dtype=dtype, copy=True)
    else:
        array = numpy.array(data, dtype=dtype)
        if dtype is None and array.dtype == numpy.float64:
            array = array.astype(_DEFAULT_FLOAT)
        if array.dtype == object:
            raise TypeError(f"tensor: could not build a numeric array from {type(data).__name__} (ragged nesting "
                            "or non-numeric items?)")
        if device is not None:
            array = to_device(array, device)
    return Tensor(array, requires_grad=requires_grad)


def as_tensor(data: Any, dtype: Any = None, device: Any = None) -> Tensor:
    """Like :func:`tensor`, but without copying when ``data`` already is a Tensor or array of the right kind."""
    if isinstance(data, Tensor) and (dtype is None or data.dtype == dtype) and (
            device is None or data.device == device):
        return data
    if hasattr(data, "dtype") and dtype is None and device is None:
        return Tensor(data)
    return tensor(data, dtype=dtype, device=device)


autograd._Tensor = Tensor

from . import functional as F  # noqa: E402  (functional needs Tensor defined first)
from . import inplace  # noqa: E402  (in-place methods, written with functional)
