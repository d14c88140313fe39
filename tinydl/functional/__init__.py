"""Differentiable ops, by family (``import tinydl.functional as F``).

Every public function here has an entry in the op catalogue (tests/catalogue/), which checks it against an
independent reference, with gradcheck and with hypothesis-generated inputs.

To add a family: write ``tinydl/functional/<family>.py`` with an ``__all__`` and add its name to ``FAMILIES``.
"""
import importlib as _importlib

FAMILIES = ("elementwise", "activation", "reduction", "shape", "linalg", "recurrent", "attention", "loss",
            "normalization", "dropout", "embedding", "conv", "pooling", "rotary")

__all__: list = []
for _family in FAMILIES:
    _module = _importlib.import_module(f"{__name__}.{_family}")
    for _name in _module.__all__:
        globals()[_name] = getattr(_module, _name)
    __all__ += _module.__all__
del _family, _module, _name
