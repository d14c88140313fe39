"""tinydl.io.safetensors against the reference `safetensors` package (both directions), round trips of random
tensor dicts, the real MiniLM file, Module state dicts, and atomic writes. Bad files: test_safetensors_errors.py.
"""
import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tinydl
from tinydl import nn
from tinydl.io import safetensors as tst

try:
    import safetensors.numpy as REFERENCE
except ImportError:
    REFERENCE = None

WRITABLE_DTYPES = [np.float64, np.float32, np.float16, np.int64, np.int32, np.int16, np.int8, np.uint64,
                   np.uint32, np.uint16, np.uint8, np.bool_]


def sample_tensors(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """One tensor of each writable dtype, of assorted shapes (a scalar and an empty one included)."""
    shapes = [(3, 4), (5,), (), (2, 0, 3), (1, 1, 7), (4, 2)]
    tensors = {}
    for index, dtype in enumerate(WRITABLE_DTYPES):
        shape = shapes[index % len(shapes)]
        values = np.asarray(rng.standard_normal(shape) * 100)
        tensors[f"layer{index}.{np.dtype(dtype).name}"] = values.astype(dtype) if dtype != np.bool_ else values > 0
    return tensors


def assert_same_tensors(found: dict, expected: dict) -> None:
    assert sorted(found) == sorted(expected)
    for name, array in expected.items():
        assert found[name].dtype == array.dtype, name
        assert found[name].shape == array.shape, name
        np.testing.assert_array_equal(found[name], array, err_msg=name)


# ------------------------------------------------------------------------------------ against the reference
def test_files_we_write_are_read_by_the_reference_package(tmp_path):
    reference = pytest.importorskip("safetensors.numpy", reason="the reference `safetensors` package is absent")
    from safetensors import safe_open
    tensors = sample_tensors(np.random.default_rng(0))
    tst.save_file(tensors, tmp_path / "ours.safetensors", metadata={"format": "np", "note": "é ✓"})
    assert_same_tensors(reference.load_file(tmp_path / "ours.safetensors"), tensors)
    with safe_open(tmp_path / "ours.safetensors", framework="np") as file:
        assert file.metadata() == {"format": "np", "note": "é ✓"}


def test_files_the_reference_writes_are_read_by_us(tmp_path):
    reference = pytest.importorskip("safetensors.numpy", reason="the reference `safetensors` package is absent")
    tensors = sample_tensors(np.random.default_rng(1))
    reference.save_file(tensors, str(tmp_path / "theirs.safetensors"), metadata={"k": "v"})
    assert_same_tensors(tst.load_file(tmp_path / "theirs.safetensors"), tensors)
    with tst.SafetensorsFile(tmp_path / "theirs.safetensors") as file:
        assert file.metadata == {"k": "v"}


def test_bfloat16_written_by_torch_is_widened_exactly_to_float32(tmp_path):
    torch = pytest.importorskip("torch", reason="PyTorch (the bfloat16 writer) is absent")
    reference = pytest.importorskip("safetensors.torch", reason="the reference `safetensors` package is absent")
    values = torch.cat([torch.randn(50, generator=torch.Generator().manual_seed(0)) * 1e3,
                        torch.tensor([0.0, -0.0, float("inf"), float("-inf"), 1e-40])]).to(torch.bfloat16)
    reference.save_file({"w": values.reshape(5, 11)}, str(tmp_path / "bf16.safetensors"))
    with tst.SafetensorsFile(tmp_path / "bf16.safetensors") as file:
        assert file.dtype("w") == "BF16"
        loaded = file.tensor("w")
    assert loaded.dtype == np.float32 and loaded.shape == (5, 11)
    np.testing.assert_array_equal(loaded, values.float().reshape(5, 11).numpy())


def test_the_real_minilm_file_reads_as_the_reference_reads_it(minilm_folder):
    reference = pytest.importorskip("safetensors.numpy", reason="the reference `safetensors` package is absent")
    path = minilm_folder / "model.safetensors"
    assert_same_tensors(tst.load_file(path), reference.load_file(path))


# ------------------------------------------------------------------------------------------- round trips
names = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=12).filter(
    lambda name: name != "__metadata__")
arrays = st.sampled_from(WRITABLE_DTYPES).flatmap(
    lambda dtype: hnp.arrays(dtype, hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=5)))


@settings(max_examples=40)
@given(tensors=st.dictionaries(names, arrays, max_size=6),
       metadata=st.none() | st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=3))
def test_random_tensor_dicts_round_trip_and_match_the_reference(tmp_path_factory, tensors, metadata):
    path = tmp_path_factory.mktemp("roundtrip") / "t.safetensors"
    tst.save_file(tensors, path, metadata=metadata)
    with tst.SafetensorsFile(path) as file:
        assert file.metadata == (metadata or {})
        loaded = {name: file.tensor(name) for name in file.keys()}
    assert_same_tensors(loaded, tensors)
    if REFERENCE is not None:  # the reference reads our file, and we read the reference's, the same way
        assert_same_tensors(REFERENCE.load_file(str(path)), tensors)
        if tensors or metadata != {}:  # safetensors 0.8.0 writes invalid JSON for no tensors and empty metadata
            REFERENCE.save_file(tensors, str(path.with_name("theirs.safetensors")), metadata=metadata)
            assert_same_tensors(tst.load_file(path.with_name("theirs.safetensors")), tensors)
    header_bytes = int.from_bytes(path.read_bytes()[:8], "little")
    assert header_bytes % 8 == 0  # padded with spaces, so the data starts 8-byte aligned


def test_saving_accepts_tensors_views_and_big_endian_arrays(tmp_path):
    base = np.arange(24, dtype=np.float32).reshape(4, 6)
    tensors = {"tensor": tinydl.tensor(base, requires_grad=True), "transposed": base.T,
               "strided": base[::2, 1::3], "big_endian": base.astype(">f4")}
    tst.save_file(tensors, tmp_path / "t.safetensors")
    loaded = tst.load_file(tmp_path / "t.safetensors")
    for name, expected in {"tensor": base, "transposed": base.T, "strided": base[::2, 1::3],
                           "big_endian": base}.items():
        np.testing.assert_array_equal(loaded[name], expected)
        assert loaded[name].dtype == np.float32


def test_tensors_are_laid_out_by_decreasing_element_size_so_each_is_aligned(tmp_path):
    tensors = {"a_byte": np.ones(3, np.uint8), "b_double": np.ones(2, np.float64), "c_half": np.ones(5, np.float16)}
    tst.save_file(tensors, tmp_path / "t.safetensors")
    with tst.SafetensorsFile(tmp_path / "t.safetensors") as file:
        assert file.keys() == ["b_double", "c_half", "a_byte"]


def test_loaded_arrays_are_writable_copies_on_write_and_survive_the_file(tmp_path):
    path = tmp_path / "t.safetensors"
    tst.save_file({"w": np.zeros(4, np.float32)}, path)
    loaded = tst.load_file(path)
    loaded["w"][0] = 5.0
    np.testing.assert_array_equal(tst.load_file(path)["w"], np.zeros(4))  # the file is untouched
    tst.save_file({"w": np.ones(4, np.float32)}, path)  # replacing the file keeps the old mapping valid
    assert loaded["w"].tolist() == [5.0, 0.0, 0.0, 0.0]


def test_save_is_atomic_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "t.safetensors"
    tst.save_file({"w": np.ones(3, np.float32)}, path)

    def failing_fsync(fd):
        raise OSError("disk full")
    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(OSError, match="disk full"):
        tst.save_file({"w": np.zeros(3, np.float32)}, path)
    assert os.listdir(tmp_path) == ["t.safetensors"]
    np.testing.assert_array_equal(tst.load_file(path)["w"], np.ones(3))


# ------------------------------------------------------------------------------------------ state dicts
class Small(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(3, 4)
        self.norm = nn.BatchNorm1d(4)


def test_a_module_state_dict_round_trips(tmp_path):
    tinydl.manual_seed(0)
    source, target = Small(), Small()
    source.norm.running_mean.data[...] = np.arange(4)
    tst.save_model(source, tmp_path / "m.safetensors")
    assert tst.load_model(target, tmp_path / "m.safetensors") == ([], [])
    for name, tensor in source.state_dict().items():
        np.testing.assert_array_equal(target.state_dict()[name].data, tensor.data, err_msg=name)


def test_weights_move_between_pytorch_and_tinydl(tmp_path):
    torch = pytest.importorskip("torch", reason="PyTorch is absent")
    reference = pytest.importorskip("safetensors.torch", reason="the reference `safetensors` package is absent")
    torch.manual_seed(0)
    theirs = torch.nn.Linear(3, 4)
    reference.save_file(theirs.state_dict(), str(tmp_path / "torch.safetensors"))
    ours = nn.Linear(3, 4)
    tst.load_model(ours, tmp_path / "torch.safetensors")
    x = np.random.default_rng(0).standard_normal((2, 3)).astype(np.float32)
    np.testing.assert_allclose(ours(tinydl.tensor(x)).data, theirs(torch.from_numpy(x)).detach().numpy(),
                               rtol=1e-6, atol=1e-6)
    tst.save_model(ours, tmp_path / "tinydl.safetensors")
    back = torch.nn.Linear(3, 4)
    back.load_state_dict(reference.load_file(str(tmp_path / "tinydl.safetensors")))
    torch.testing.assert_close(back.weight, theirs.weight, rtol=0, atol=0)


def test_loading_the_wrong_weights_names_the_file_and_every_mismatch(tmp_path):
    tst.save_file({"linear.weight": np.zeros((5, 3), np.float32), "extra": np.zeros(1, np.float32)},
                  tmp_path / "wrong.safetensors")
    with pytest.raises(tst.SafetensorsError) as info:
        tst.load_model(Small(), tmp_path / "wrong.safetensors")
    message = str(info.value)
    for fragment in ("wrong.safetensors", "Small", "missing keys", "linear.bias", "norm.running_mean",
                     "unexpected keys: extra", "linear.weight: shape (5, 3)", "(4, 3)"):
        assert fragment in message, (fragment, message)
