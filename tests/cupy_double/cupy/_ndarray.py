"""``cupy.ndarray`` on the double: a NumPy array in a wrapper that behaves like device memory.

What the wrapper enforces, as real CuPy does:

* it is not a ``numpy.ndarray``, and NumPy cannot read it implicitly: ``__array__`` raises TypeError (CuPy's own
  message), so ``numpy.asarray(device_array)`` and any NumPy function that would need host data fail;
* NumPy functions and ufuncs called on it dispatch (``__array_function__``, ``__array_ufunc__``) to the CuPy
  function of the same name, and only when CuPy 14 has that name; a host array among the arguments is refused;
* reading values on the host (``float``, ``int``, ``bool``, ``.item()``, ``.tolist()``, ``.get()``, printing) works,
  and is counted as a device-to-host transfer (a synchronisation), refused inside ``cupyx.allow_synchronize(False)``;
* basic-index assignment refuses host arrays (``non-scalar numpy.ndarray cannot be used for fill``) and lists;
* ``flags`` has ``c_contiguous``, ``f_contiguous`` and ``owndata`` only (no ``writeable``: CuPy arrays are always
  writable), and views that NumPy makes read-only (``broadcast_to``) are writable here, stride 0 included;
* every array records the device that was current when it was allocated.
"""
from __future__ import annotations

import operator
from typing import Any

import numpy

from . import _double
from ._double import NAMES, check_current_device, device_to_host, state, unsupported, unwrap, wrap

_METHODS = frozenset(NAMES["cupy.ndarray"])


def _writable(a: numpy.ndarray) -> numpy.ndarray:
    """The same memory seen through a writable view (NumPy marks broadcast views read-only; CuPy does not)."""
    if a.flags.writeable:
        return a
    root = a
    while isinstance(root.base, numpy.ndarray):
        root = root.base
    if root.flags.writeable and root.flags.c_contiguous:
        offset = a.__array_interface__["data"][0] - root.__array_interface__["data"][0]
        try:
            return numpy.ndarray(a.shape, a.dtype, buffer=root, offset=offset, strides=a.strides)
        except (TypeError, ValueError):
            pass
    return a.copy()


class Flags:
    """``ndarray.flags`` as CuPy has it: contiguity and ownership; no ``writeable``."""

    __slots__ = ("c_contiguous", "f_contiguous", "owndata")

    def __init__(self, a: numpy.ndarray, owndata: bool):
        self.c_contiguous, self.f_contiguous, self.owndata = a.flags.c_contiguous, a.flags.f_contiguous, owndata

    def __getitem__(self, name: str) -> bool:
        return getattr(self, {"C_CONTIGUOUS": "c_contiguous", "F_CONTIGUOUS": "f_contiguous",
                              "OWNDATA": "owndata"}[name])


class MemoryPointer:
    """``ndarray.data``: where the array's memory starts, on which device."""

    def __init__(self, a: numpy.ndarray, device: int):
        self.ptr, self.device_id = a.__array_interface__["data"][0], device

    @property
    def device(self) -> Any:
        from .cuda import Device
        return Device(self.device_id)


class ndarray:
    """A device array of the CuPy double (see the module docstring for the rules it keeps)."""

    __slots__ = ("_a", "_device", "_owndata", "__weakref__")
    __array_priority__ = 100  # CuPy's; tinydl's Tensor (1000) wins reflected operators

    def __init__(self, shape: Any, dtype: Any = float, memptr: Any = None, strides: Any = None,
                 order: str = "C"):
        if memptr is not None or strides is not None:
            raise NotImplementedError("the CuPy double's ndarray() takes shape, dtype and order only")
        self._a = numpy.empty(shape, dtype=dtype, order=order)
        self._device, self._owndata = state.device, True
        _double.memory.allocate(self._a, self._device)

    @classmethod
    def _adopt(cls, a: numpy.ndarray, device: int) -> "ndarray":
        """Wrap NumPy's result ``a`` (computed on ``device``) without copying it."""
        self = cls.__new__(cls)
        owndata = a.base is None
        self._a, self._device, self._owndata = _writable(a), device, owndata
        root = self._a
        while isinstance(root.base, numpy.ndarray):
            root = root.base
        _double.memory.allocate(root, device)
        return self

    # ------------------------------------------------------------------------------------- metadata
    shape = property(lambda self: self._a.shape)
    dtype = property(lambda self: self._a.dtype)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)
    strides = property(lambda self: self._a.strides)
    itemsize = property(lambda self: self._a.itemsize)
    nbytes = property(lambda self: self._a.nbytes)
    flags = property(lambda self: Flags(self._a, self._owndata))
    data = property(lambda self: MemoryPointer(self._a, self._device))
    T = property(lambda self: ndarray._adopt(self._a.T, self._device))
    mT = property(lambda self: ndarray._adopt(numpy.swapaxes(self._a, -1, -2), self._device))

    @property
    def device(self) -> Any:
        from .cuda import Device
        return Device(self._device)

    @property
    def base(self) -> Any:
        return None if self._owndata else ndarray._adopt(self._a.base, self._device) \
            if isinstance(self._a.base, numpy.ndarray) else None

    def __len__(self) -> int:
        if self._a.ndim == 0:
            raise TypeError("len() of unsized object")
        return len(self._a)

    def __iter__(self) -> Any:
        if self._a.ndim == 0:
            raise TypeError("iteration over a 0-d array")
        return (self[index] for index in range(len(self)))

    # ------------------------------------------------------------------------- host <-> device
    def __array__(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError("Implicit conversion to a NumPy array is not allowed. Please use `.get()` to construct a "
                        "NumPy array explicitly.")

    def get(self, stream: Any = None, order: str = "C", out: Any = None, blocking: bool = True) -> numpy.ndarray:
        device_to_host("ndarray.get()")
        result = numpy.array(self._a, order=order)
        if out is not None:
            out[...] = result
            return out
        return result

    def set(self, arr: numpy.ndarray, stream: Any = None) -> None:
        if not isinstance(arr, numpy.ndarray):
            raise TypeError(f"Only numpy.ndarray can be set to cupy.ndarray: {type(arr)}")
        if arr.shape != self._a.shape or arr.dtype != self._a.dtype:
            raise ValueError("Shape mismatch or dtype mismatch in ndarray.set()")
        _double.host_to_device(arr)
        self._a[...] = arr

    def item(self) -> Any:
        device_to_host("ndarray.item()")
        return self._a.item()

    def tolist(self) -> Any:
        device_to_host("ndarray.tolist()")
        return self._a.tolist()

    def _scalar(self, kind: str) -> Any:
        device_to_host(f"{kind}(ndarray)")
        if self._a.size != 1:
            raise TypeError(f"only size-1 arrays can be converted to Python scalars (got shape {self._a.shape})")
        return self._a.reshape(()).item()

    def __float__(self) -> float:
        return float(self._scalar("float"))

    def __int__(self) -> int:
        return int(self._scalar("int"))

    def __complex__(self) -> complex:
        return complex(self._scalar("complex"))

    def __bool__(self) -> bool:
        if self._a.size != 1:
            raise ValueError("The truth value of an array with more than one element is ambiguous.")
        return bool(self._scalar("bool"))

    def __index__(self) -> int:
        if self._a.ndim != 0 or self._a.dtype.kind not in "iub":
            raise TypeError("only integer scalar arrays can be converted to a scalar index")
        return operator.index(self._scalar("index"))

    def __repr__(self) -> str:
        device_to_host("repr(ndarray)")
        return repr(self._a)

    def __str__(self) -> str:
        device_to_host("str(ndarray)")
        return str(self._a)

    def __format__(self, spec: str) -> str:
        device_to_host("format(ndarray)")
        return format(self._a.item() if self._a.ndim == 0 else self._a, spec)

    def __reduce__(self) -> Any:
        raise TypeError("the CuPy double does not pickle device arrays; copy them to the host with .get()")

    def __copy__(self) -> "ndarray":
        return self.copy()

    def __deepcopy__(self, memo: Any) -> "ndarray":
        return self.copy()

    # -------------------------------------------------------------------------------- dispatch
    def __array_ufunc__(self, ufunc: Any, method: str, *inputs: Any, **kwargs: Any) -> Any:
        from ._ufunc import ufunc_named
        device_ufunc = ufunc_named(ufunc.__name__)
        if device_ufunc is None:
            return NotImplemented
        return getattr(device_ufunc, "__call__" if method == "__call__" else method)(*inputs, **kwargs)

    def __array_function__(self, func: Any, types: Any, args: Any, kwargs: Any) -> Any:
        import cupy
        import cupy.linalg
        namespace, names = {"numpy": (cupy, NAMES["cupy"]),
                            "numpy.linalg": (cupy.linalg, NAMES["cupy.linalg"])}.get(func.__module__, (None, ()))
        if func.__name__ not in names:
            return NotImplemented  # NumPy then raises TypeError: no implementation for a device array
        return getattr(namespace, func.__name__)(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        """The methods of CuPy's ndarray that NumPy's ndarray shares, on the device data."""
        if name not in _METHODS or name.startswith("_"):
            raise AttributeError(f"'cupy.ndarray' object has no attribute {name!r}")
        method = getattr(self._a, name, None)
        if method is None:
            raise NotImplementedError(f"the CuPy double does not implement cupy.ndarray.{name}")

        def call(*args: Any, **kwargs: Any) -> Any:
            check_current_device(self)
            outputs = {} if kwargs.get("out") is None else {id(unwrap(kwargs["out"])): kwargs["out"]}
            with _on(self._device):
                return wrap(method(*unwrap(args), **{k: unwrap(v) for k, v in kwargs.items()}), outputs)
        return call

    def copy(self, order: str = "C") -> "ndarray":
        check_current_device(self)
        return ndarray._adopt(self._a.copy(order=order), self._device)

    def astype(self, dtype: Any, order: str = "K", casting: Any = None, subok: Any = None,
               copy: bool = True) -> "ndarray":
        check_current_device(self)
        result = self._a.astype(dtype, order=order, copy=copy)
        return self if result is self._a else ndarray._adopt(result, self._device)

    def view(self, dtype: Any = None, *args: Any) -> "ndarray":
        return ndarray._adopt(self._a.view() if dtype is None else self._a.view(dtype), self._device)

    def reshape(self, *shape: Any, order: str = "C") -> "ndarray":
        return ndarray._adopt(self._a.reshape(*shape, order=order), self._device)

    def transpose(self, *axes: Any) -> "ndarray":
        return ndarray._adopt(self._a.transpose(*axes), self._device)

    def swapaxes(self, axis1: int, axis2: int) -> "ndarray":
        return ndarray._adopt(self._a.swapaxes(axis1, axis2), self._device)

    def fill(self, value: Any) -> None:
        if isinstance(value, numpy.ndarray):
            if value.shape != ():
                raise ValueError("non-scalar numpy.ndarray cannot be used for fill")
            value = value.item()
        if not _double.is_scalar(value):
            raise unsupported(value)
        check_current_device(self)
        self._a.fill(value)

    def scatter_add(self, slices: Any, value: Any) -> None:
        import cupyx
        cupyx.scatter_add(self, slices, value)

    # -------------------------------------------------------------------------------- indexing
    def __getitem__(self, key: Any) -> "ndarray":
        key = _index_key(key)
        result = self._a[key]
        if isinstance(result, numpy.generic):  # an element: CuPy gives a 0-d view, as NumPy does with an Ellipsis
            result = self._a[(key if isinstance(key, tuple) else (key,)) + (Ellipsis,)]
        return ndarray._adopt(result, self._device)

    def __setitem__(self, key: Any, value: Any) -> None:
        check_current_device(self)
        key = _index_key(key)
        if isinstance(value, ndarray):
            check_current_device(value)
            self._a[key] = value._a
        elif _is_advanced(key):  # CuPy copies a host value over (core.array) for integer/boolean array keys
            _double.host_to_device(value)
            self._a[key] = numpy.asarray(value)
        elif isinstance(value, numpy.ndarray) and value.ndim > 0:  # basic indexing: CuPy's y.fill(value)
            raise ValueError("non-scalar numpy.ndarray cannot be used for fill")
        elif not _double.is_scalar(value):
            raise unsupported(value)
        else:
            self._a[key] = value


def _index_key(key: Any) -> Any:
    """An index as NumPy takes it. Device arrays (on the current device) give their data; host index arrays and
    lists are copied to the device first, as CuPy's ``_prepare_slice_list`` does. A boolean mask makes CuPy count
    its True entries on the host (``int(mask_scanned[-1])``, the size of the result): a synchronisation."""
    if isinstance(key, tuple):
        return tuple(_index_key(part) for part in key)
    if isinstance(key, ndarray):
        check_current_device(key)
        data = key._a
    elif isinstance(key, numpy.ndarray) and key.ndim > 0 or isinstance(key, list):
        _double.host_to_device(key)
        data = numpy.asarray(key)
    else:
        return key
    if data.dtype == bool and data.ndim > 0:
        device_to_host("boolean-mask indexing")
    return data


def _is_advanced(key: Any) -> bool:
    """True when an (already converted) index holds an integer or boolean array (advanced indexing)."""
    parts = key if isinstance(key, tuple) else (key,)
    return any(isinstance(part, numpy.ndarray) and part.ndim > 0 for part in parts)


class _on:
    """Run with ``device`` current (methods of an array run on its device)."""

    def __init__(self, device: int):
        self.device = device

    def __enter__(self) -> None:
        self.previous, state.device = state.device, self.device

    def __exit__(self, *exc: Any) -> None:
        state.device = self.previous


def _binary(name: str, reflected: bool = False, inplace: bool = False) -> Any:
    def method(self: ndarray, other: Any) -> Any:
        if not isinstance(other, ndarray) and getattr(other, "__array_priority__", -1) > self.__array_priority__ \
                and not isinstance(other, numpy.ndarray):
            return NotImplemented
        from ._ufunc import ufunc_named
        function = ufunc_named(name)
        if inplace:
            return function(self, other, out=self)
        return function(other, self) if reflected else function(self, other)
    return method


for _name, _ufunc_name in [("add", "add"), ("sub", "subtract"), ("mul", "multiply"), ("truediv", "true_divide"),
                           ("floordiv", "floor_divide"), ("mod", "remainder"), ("pow", "power"),
                           ("matmul", "matmul"), ("and", "bitwise_and"), ("or", "bitwise_or"),
                           ("xor", "bitwise_xor"), ("lshift", "left_shift"), ("rshift", "right_shift")]:
    setattr(ndarray, f"__{_name}__", _binary(_ufunc_name))
    setattr(ndarray, f"__r{_name}__", _binary(_ufunc_name, reflected=True))
    setattr(ndarray, f"__i{_name}__", _binary(_ufunc_name, inplace=True))
for _name, _ufunc_name in [("lt", "less"), ("le", "less_equal"), ("gt", "greater"), ("ge", "greater_equal"),
                           ("eq", "equal"), ("ne", "not_equal")]:
    setattr(ndarray, f"__{_name}__", _binary(_ufunc_name))
for _name, _ufunc_name in [("neg", "negative"), ("pos", "positive"), ("abs", "absolute"), ("invert", "invert")]:
    setattr(ndarray, f"__{_name}__", lambda self, _u=_ufunc_name: __import__("cupy")._ufunc.ufunc_named(_u)(self))
ndarray.__hash__ = None  # type: ignore[assignment]
ndarray.__module__ = "cupy"
