"""The fused CUDA kernels compile, for float32 and float64, on a machine without a GPU.

Two compilers check the sources, each where it is present (the test is skipped otherwise):

* ``nvcc --ptx`` (the CUDA toolkit): a full C++ front end, so a syntax or type error fails here; the PTX must
  define every kernel that the Python wrappers launch by name;
* NVRTC through CuPy's low-level binding (``cupy_backends.cuda.libs.nvrtc``), the compiler CuPy's ``RawModule``
  uses at run time. CuPy's own ``compile_using_nvrtc`` asks the CUDA *driver* for the GPU's architecture first
  and fails without one (cudaErrorInsufficientDriver), so the test calls NVRTC directly with a fixed
  architecture; NVRTC itself needs no driver.

Also: importing the kernels imports no CuPy.
"""
import concurrent.futures
import pathlib
import re
import shutil
import subprocess
import sys

import pytest

from tinydl.kernels.cuda import build

ARCHITECTURE = "compute_80"
# the options CuPy 14's RawModule passes to NVRTC besides tinydl's own (cupy/cuda/compiler.py)
CUPY_OPTIONS = ("-ftz=true", "--device-as-default-execution-space")
PACKAGE = pathlib.Path(build.__file__).parent
CASES = [(name, dtype) for name in sorted(build.SOURCES) for dtype in build.REAL_TYPES]


def launched_kernels() -> dict[str, set[str]]:
    """Source family -> the kernel names its module launches: ``kernel(FAMILY, dtype, "name")`` in the code."""
    launched: dict[str, set[str]] = {}
    for path in PACKAGE.glob("*.py"):
        text = path.read_text()
        families = dict(re.findall(r'^(\w+) = register\("(\w+)"', text, re.M))
        for constant, function in re.findall(r'kernel\((\w+), [^,]+, "(\w+)"\)', text):
            launched.setdefault(families[constant], set()).add(function)
    return launched


def test_every_family_is_registered_and_launches_kernels():
    assert set(build.SOURCES) == {"gelu", "recurrent", "optim", "dropout", "softmax", "normalization", "pooling",
                                  "im2col"}
    assert set(launched_kernels()) == set(build.SOURCES)


def test_importing_the_kernels_imports_no_cupy():
    code = "import sys, tinydl, tinydl.kernels.cuda; assert 'cupy' not in sys.modules, 'cupy imported'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=pathlib.Path(__file__).parents[2])


def _nvcc_ptx(name: str, dtype: str, folder: pathlib.Path) -> str:
    """Compile one source to PTX with nvcc; returns "" when it compiles and defines every launched kernel, else
    what went wrong."""
    source = folder / f"{name}_{dtype}.cu"
    source.write_text(build.source_for(name, dtype))
    ptx = folder / f"{name}_{dtype}.ptx"
    command = ["nvcc", "--ptx", f"-arch={ARCHITECTURE}", *build.COMPILE_OPTIONS, "-Werror", "all-warnings", "-o",
               str(ptx), str(source)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    if result.returncode != 0:
        return f"{name} ({dtype}):\n{result.stderr}"
    missing = launched_kernels()[name] - set(re.findall(r"\.entry\s+(\w+)", ptx.read_text()))
    return f"{name} ({dtype}): no kernel named {sorted(missing)}" if missing else ""


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="needs nvcc (the CUDA toolkit)")
def test_every_source_compiles_with_nvcc(tmp_path):
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        problems = [p for p in pool.map(lambda case: _nvcc_ptx(*case, tmp_path), CASES) if p]
    assert not problems, "\n".join(problems)


def _nvrtc():
    try:
        from cupy_backends.cuda.libs import nvrtc
        nvrtc.getVersion()
    except Exception as error:  # ImportError without CuPy; a missing libnvrtc raises at the first call
        pytest.skip(f"needs CuPy's NVRTC binding ({error})")
    return nvrtc


@pytest.mark.parametrize("name, dtype", CASES)
def test_source_compiles_with_nvrtc(name, dtype):
    nvrtc = _nvrtc()
    program = nvrtc.createProgram(build.source_for(name, dtype), f"{name}.cu", [], [])
    try:
        nvrtc.compileProgram(program, [f"-arch={ARCHITECTURE}", *build.COMPILE_OPTIONS, *CUPY_OPTIONS])
    except Exception as error:
        pytest.fail(f"{name} ({dtype}) does not compile: {error}\n{nvrtc.getProgramLog(program)}")
    ptx = nvrtc.getPTX(program).decode()
    entries = set(re.findall(r"\.entry\s+(\w+)", ptx))
    assert launched_kernels()[name] <= entries
