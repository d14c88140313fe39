"""The op catalogue: one module per op family, each defining ``SPECS``, a list of tinydl.testing.OpSpec."""
import importlib
import pkgutil


def all_specs() -> list:
    """Every OpSpec of every module in this package."""
    specs = []
    for module in pkgutil.iter_modules(__path__):
        specs.extend(importlib.import_module(f"{__name__}.{module.name}").SPECS)
    return specs
