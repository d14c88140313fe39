"""NumPy/CuPy parity of the whole op catalogue: each entry's forward and gradients on the GPU equal the CPU's.

Runs on the GPU where CuPy and a GPU are present, and on the CuPy double of tests/cupy_double everywhere else
(see tests/conftest.py), so the CuPy path of every op runs in every test run. Where a second GPU is present (the
double has two), each op also runs on "cuda:1", which catches work that lands on the current GPU instead.
"""
import numpy as np
import pytest

import tinydl

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not tinydl.is_available("cuda"), reason="needs CuPy and an NVIDIA GPU")]


def _specs():
    import sys
    import pathlib
    sys.path.insert(0, str(pathlib.Path(__file__).parents[1]))
    from catalogue import all_specs
    return all_specs()


def _on(device, value):
    """Array-valued keyword arguments (masks, index arrays) moved to the device of the tensors."""
    from tinydl.backend import to_device
    if isinstance(value, np.ndarray):
        return to_device(value, device)
    if isinstance(value, tuple):
        return tuple(_on(device, v) for v in value)
    return value


def _public(op):
    """The op as users call it: ``tinydl.functional.<name>`` (which runs on its inputs' GPU) when the catalogue
    entry holds the function of the family module."""
    import tinydl.functional as F
    public = getattr(F, getattr(op, "__name__", ""), None)
    return public if getattr(public, "__wrapped__", None) is op else op


@pytest.mark.parametrize("gpu", ["cuda", "cuda:1"])
@pytest.mark.parametrize("spec", _specs(), ids=lambda s: s.name)
def test_catalogue_entry_matches_on_gpu(spec, gpu):
    from hypothesis import given, settings, HealthCheck
    from tinydl.testing import assert_close

    if tinydl.Device(gpu).index >= tinydl.cuda.device_count():
        pytest.skip("needs a second GPU")
    op = _public(spec.op)

    @settings(max_examples=4 if gpu == "cuda" else 2, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(case=spec.cases)
    def run(case):
        def evaluate(device):
            positions = spec.differentiable if spec.differentiable is not None else [
                i for i, a in enumerate(case.arrays) if np.asarray(a).dtype.kind == "f"]
            tensors = [tinydl.tensor(a, device=device, requires_grad=i in positions)
                       for i, a in enumerate(case.arrays)]
            result = op(*tensors, **{k: _on(device, v) for k, v in case.kwargs.items()})
            outputs = result if isinstance(result, (tuple, list)) else (result,)
            floats = [o for o in outputs if o.dtype.kind == "f" and o.requires_grad]
            if floats:
                tinydl.autograd.backward(floats, [tinydl.ones_like(o) for o in floats])
            return [o.detach().cpu().numpy() for o in outputs], [
                None if t.grad is None else t.grad.cpu().numpy() for t in tensors]

        cpu_out, cpu_grads = evaluate("cpu")
        gpu_out, gpu_grads = evaluate(gpu)
        for a, b in zip(gpu_out, cpu_out):
            assert_close(a, b, rtol=1e-9, atol=1e-9, name=f"{spec.name} forward")
        for a, b in zip(gpu_grads, cpu_grads):
            assert (a is None) == (b is None)
            if a is not None:
                assert_close(a, b, rtol=1e-9, atol=1e-9, name=f"{spec.name} gradient")

    run()
