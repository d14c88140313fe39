"""The CuPy rules the double keeps, checked against whichever CuPy is in use: on a GPU machine these pass on real
CuPy, which shows the double's rules are CuPy's (tests that need the double's counters or kernels say so)."""
import os

import numpy as np
import pytest

from ._gpu import no_synchronisation, on_double, requires_gpu

pytestmark = requires_gpu


def test_device_arrays_refuse_implicit_conversion_to_numpy():
    import cupy
    a = cupy.arange(3.0)
    assert not isinstance(a, np.ndarray) and type(a).__module__.startswith("cupy")
    with pytest.raises(TypeError):
        np.asarray(a)
    with pytest.raises(TypeError):
        a + np.ones(3)
    with pytest.raises(TypeError):
        cupy.exp(np.ones(3))
    assert float((a * np.float32(2) + 1.5).sum()) == 10.5  # scalars mix freely
    np.testing.assert_array_equal(cupy.asnumpy(a), [0, 1, 2])
    np.testing.assert_array_equal(a.get(), [0, 1, 2])


def test_cupys_missing_pieces_stay_missing():
    import cupy
    a = cupy.zeros((2, 3))
    with pytest.raises(NotImplementedError):
        cupy.fmax.reduce(a, axis=-1)
    assert not hasattr(cupy.random.default_rng(0), "permutation")
    assert not hasattr(a.flags, "writeable")
    view = cupy.broadcast_to(cupy.zeros(1), (3,))
    assert view.strides == (0,)
    with pytest.raises(ValueError, match="non-scalar numpy.ndarray"):
        a[1] = np.ones(3)


@pytest.mark.skipif("not on_double()", reason="the CuPy double's kernels are the ones that refuse to run")
def test_user_kernels_build_on_the_double_but_refuse_to_run():
    import cupy
    kernel = cupy.ElementwiseKernel("T x", "T y", "y = x * x", "square")
    with pytest.raises(cupy._double.KernelUnavailable, match="square.*TINYDL_FUSED_KERNELS=0"):
        kernel(cupy.ones(3))
    assert os.environ["TINYDL_FUSED_KERNELS"] == "0"


@pytest.mark.skipif("not on_double()", reason="the double's transfer counter")
def test_boolean_mask_indexing_is_a_synchronisation():
    """CuPy counts a mask's True entries on the host to size the result (int(mask_scanned[-1]))."""
    import cupy
    import cupyx
    a = cupy.arange(4.0)
    with pytest.raises(cupyx.DeviceSynchronized):
        with no_synchronisation():
            a[a > 1] = 0
    with no_synchronisation():
        cupy.copyto(a, 0.0, where=a > 1)  # the elementwise way
    np.testing.assert_array_equal(a.get(), [0, 1, 0, 0])


def test_host_values_follow_cupys_index_assignment_rules():
    """Basic indexing fills from a scalar only; integer-array indexing copies a host value over."""
    import cupy
    a = cupy.zeros(4)
    a[cupy.asarray([0, 2])] = np.array([5.0, 6.0])
    np.testing.assert_array_equal(a.get(), [5, 0, 6, 0])
    with pytest.raises(ValueError, match="non-scalar numpy.ndarray"):
        cupy.copyto(a, np.ones(4))


def test_numpy_functions_reach_only_what_cupy_has():
    """NumPy's functions dispatch to CuPy's of the same name; where CuPy has none (``insert``, ``nanquantile``),
    NumPy finds no implementation for a device array and raises."""
    import cupy
    a = cupy.arange(4.0)
    assert float(np.sum(a)) == 6.0 and type(np.concatenate([a, a])) is cupy.ndarray
    with pytest.raises(TypeError):
        np.insert(a, 0, 1.0)
    with pytest.raises(TypeError):
        np.nanquantile(a, 0.5)
    with pytest.raises(AttributeError):
        cupy.insert


def test_ndarray_methods_are_cupys():
    import cupy
    a = cupy.zeros(3)
    assert not hasattr(a, "resize") and not hasattr(a, "setflags")  # NumPy has them, CuPy does not
    assert type(a.sum()) is cupy.ndarray and a.sum().shape == ()  # reductions stay on the device, 0-d


def test_cupyx_helpers_tinydl_relies_on():
    import math

    import cupy
    import cupyx
    import cupyx.scipy.special
    from cupy.lib.stride_tricks import as_strided
    target = cupy.zeros(3)
    cupyx.scatter_add(target, cupy.asarray([0, 2, 0]), cupy.asarray([1.0, 2.0, 3.0]))  # repeats accumulate
    np.testing.assert_array_equal(target.get(), [4, 0, 2])
    x = cupy.asarray([-1.0, 0.5])
    np.testing.assert_allclose(cupyx.scipy.special.erf(x).get(), [math.erf(-1.0), math.erf(0.5)], rtol=1e-12)
    base = cupy.arange(6.0)
    windows = as_strided(base, shape=(4, 3), strides=(8, 8))  # overlapping windows over the same memory
    np.testing.assert_array_equal(windows[1].get(), [1, 2, 3])
    pinned = cupyx.empty_pinned((2, 3), dtype=np.float32)
    assert isinstance(pinned, np.ndarray) and pinned.shape == (2, 3)
