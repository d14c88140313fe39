"""Write ``cupy_names.json``: the public names of the real CuPy that the CuPy double may expose.

The double (``tests/cupy_double``) dispatches a NumPy function called on a device array only when real CuPy has a
function of that name, so tinydl cannot pass its GPU tests by calling something CuPy lacks. The list is read from
the installed package, never written by hand. Run it with a Python that has real CuPy (a GPU is not needed; CuPy
imports without one):

    /work/venv-cupy/bin/python tests/cupy_double/make_names.py

It rewrites tests/cupy_double/cupy_names.json next to this script.
"""
import json
import pathlib
import sys

HERE = pathlib.Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if pathlib.Path(p or ".").resolve() != HERE]  # not the double next to us

import cupy  # noqa: E402
import cupy.lib.stride_tricks  # noqa: E402
import cupyx  # noqa: E402
import cupyx.scipy.special  # noqa: E402


def public(namespace) -> list[str]:
    return sorted(name for name in dir(namespace) if not name.startswith("_"))


def main() -> None:
    names = {
        "version": cupy.__version__,
        "cupy": public(cupy),
        "cupy.ufuncs": sorted(name for name in public(cupy) if type(getattr(cupy, name)).__name__ == "ufunc"),
        "cupy.ndarray": public(cupy.ndarray),
        "cupy.linalg": public(cupy.linalg),
        "cupy.random": public(cupy.random),
        "cupy.random.Generator": public(cupy.random.Generator),
        "cupy.lib.stride_tricks": public(cupy.lib.stride_tricks),
        "cupy.cuda": public(cupy.cuda),
        "cupy.cuda.Device": public(cupy.cuda.Device),
        "cupy.cuda.MemoryPool": public(cupy.cuda.MemoryPool),
        "cupy.cuda.PinnedMemoryPool": public(cupy.cuda.PinnedMemoryPool),
        "cupyx": public(cupyx),
        "cupyx.scipy.special": public(cupyx.scipy.special),
    }
    assert "double" not in cupy.__version__, "this reads real CuPy, not the double"
    target = HERE / "cupy_names.json"
    target.write_text(json.dumps(names, indent=1) + "\n")
    print(f"wrote {target}: CuPy {cupy.__version__}, {len(names['cupy'])} top-level names")


if __name__ == "__main__":
    main()
