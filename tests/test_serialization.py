"""tinydl.save / tinydl.load: round trips, atomic writes, and refusal of damaged, foreign and pickle files."""
import io
import json
import math
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from tinydl.serialization import CheckpointError, load, save
from tinydl.tensor import Tensor

REPO = Path(__file__).resolve().parents[1]


def assert_same(got, want, where="obj"):
    """Structural equality that also checks types: tuples stay tuples, ints stay ints, dtypes are kept."""
    assert type(got) is type(want) or (isinstance(want, np.ndarray) and type(got) is np.ndarray), \
        f"{where}: {type(got).__name__} != {type(want).__name__}"
    if isinstance(want, dict):
        assert list(got) == list(want), f"{where}: keys {list(got)} != {list(want)}"
        for key in want:
            assert_same(got[key], want[key], f"{where}[{key!r}]")
    elif isinstance(want, (list, tuple)):
        assert len(got) == len(want), f"{where}: length {len(got)} != {len(want)}"
        for position, (a, b) in enumerate(zip(got, want)):
            assert_same(a, b, f"{where}[{position}]")
    elif isinstance(want, Tensor):
        assert got.requires_grad == want.requires_grad
        assert_same(got.data, want.data, f"{where}.data")
    elif isinstance(want, (np.ndarray, np.generic)):
        assert got.dtype == want.dtype and got.shape == want.shape, f"{where}: {got.dtype}{got.shape}"
        np.testing.assert_array_equal(got, want)
    elif isinstance(want, float) and math.isnan(want):
        assert math.isnan(got)
    else:
        assert got == want and (not isinstance(want, float) or math.copysign(1, got) == math.copysign(1, want))


dtypes = st.sampled_from([np.float32, np.float64, np.int64, np.int32, np.uint8, np.bool_])
shapes = st.lists(st.integers(0, 3), min_size=0, max_size=3).map(tuple)


@st.composite
def arrays(draw):
    dtype, shape = draw(dtypes), draw(shapes)
    values = np.random.default_rng(draw(st.integers(0, 2**32 - 1))).normal(size=shape) * 100
    array = values.astype(dtype)
    if array.ndim == 2 and draw(st.booleans()):
        array = array.T                                             # non-contiguous
    return array


leaves = st.one_of(
    st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8), arrays(),
    arrays().map(lambda a: Tensor(a.astype(np.float32)) if a.size else Tensor(a)),
    arrays().filter(lambda a: a.dtype.kind == "f").map(lambda a: Tensor(a, requires_grad=True)),
    st.sampled_from([np.float32(1.5), np.float64(-0.25), np.int64(-3), np.bool_(True)]),
)
keys = st.one_of(st.text(max_size=6), st.integers(-5, 5))
structures = st.recursive(leaves, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.lists(inner, max_size=3).map(tuple),
    st.dictionaries(keys, inner, max_size=3)), max_leaves=12)


@settings(max_examples=60, deadline=None)
@given(obj=structures)
def test_round_trip_of_every_supported_type(tmp_path_factory, obj):
    path = tmp_path_factory.mktemp("ckpt") / "state.tdl"
    save(obj, path)
    assert_same(load(path), obj)


def test_a_training_state_round_trips(tmp_path):
    state = {"model": {"conv1.weight": Tensor(np.random.default_rng(0).normal(size=(4, 3, 3, 3)).astype(np.float32)),
                       "bn.num_batches_tracked": Tensor(np.array(7))},
             "optimizer": {"state": {0: {"step": 12, "exp_avg": np.zeros((4, 3, 3, 3), np.float32)}},
                           "param_groups": [{"lr": 1e-3, "betas": (0.9, 0.999), "params": [0]}]},
             "epoch": 3, "rng": np.random.default_rng(5).bit_generator.state, "best": None,
             "scalar": np.zeros(()), "empty": np.zeros((0, 5), np.int64)}
    save(state, tmp_path / "ckpt.tdl")
    loaded = load(tmp_path / "ckpt.tdl")
    assert_same(loaded, state)
    assert isinstance(loaded["model"]["conv1.weight"], Tensor) and loaded["model"]["conv1.weight"].dtype == np.float32
    assert isinstance(loaded["optimizer"]["state"][0]["exp_avg"], np.ndarray)
    generator = np.random.default_rng()
    generator.bit_generator.state = loaded["rng"]
    assert generator.integers(1000) == np.random.default_rng(5).integers(1000)
    on_cpu = load(tmp_path / "ckpt.tdl", device="cpu")
    assert str(on_cpu["model"]["conv1.weight"].device) == "cpu"


def test_the_file_is_a_zip_with_a_json_manifest_readable_by_numpy(tmp_path):
    save({"model": {"w": np.arange(3.0)}, "epoch": 2}, tmp_path / "ckpt")
    with zipfile.ZipFile(tmp_path / "ckpt") as archive:
        manifest = json.loads(archive.read("manifest.json"))
    assert manifest["format"] == "tinydl-checkpoint" and manifest["version"] == 1
    with np.load(tmp_path / "ckpt", allow_pickle=False) as npz:
        np.testing.assert_array_equal(npz["arrays/model/w"], np.arange(3.0))


@pytest.mark.parametrize("obj, message", [
    ({"a": {1, 2}}, r"obj\['a'\] has unsupported type set"),
    ({(1, 2): 3}, r"key \(1, 2\) of type tuple"),
    ([np.array([object()])], r"obj\[0\] is an object array"),
])
def test_unsupported_values_are_refused_before_anything_is_written(tmp_path, obj, message):
    save({"old": 1}, tmp_path / "ckpt")
    with pytest.raises(TypeError, match=message):
        save(obj, tmp_path / "ckpt")
    assert os.listdir(tmp_path) == ["ckpt"] and load(tmp_path / "ckpt") == {"old": 1}


def test_reference_cycles_are_refused(tmp_path):
    cycle = {"a": []}
    cycle["a"].append(cycle)
    with pytest.raises(ValueError, match=r"obj\['a'\]\[0\] contains itself"):
        save(cycle, tmp_path / "ckpt")
    shared = [1]
    save({"x": shared, "y": shared}, tmp_path / "ckpt")            # shared, not cyclic: fine
    assert load(tmp_path / "ckpt") == {"x": [1], "y": [1]}


def test_success_leaves_no_temporary_file_and_replaces_the_old_checkpoint(tmp_path):
    save({"v": 1}, tmp_path / "ckpt")
    save({"v": 2}, tmp_path / "ckpt")
    assert os.listdir(tmp_path) == ["ckpt"] and load(tmp_path / "ckpt") == {"v": 2}


def test_an_error_while_writing_keeps_the_old_checkpoint(tmp_path, monkeypatch):
    save({"v": np.arange(3)}, tmp_path / "ckpt")
    calls = []

    def failing_write(*args, **kwargs):
        calls.append(1)
        raise OSError("disk full")

    monkeypatch.setattr(np.lib.format, "write_array", failing_write)
    with pytest.raises(OSError, match="disk full"):
        save({"v": np.arange(5)}, tmp_path / "ckpt")
    assert calls and os.listdir(tmp_path) == ["ckpt"]
    monkeypatch.undo()
    np.testing.assert_array_equal(load(tmp_path / "ckpt")["v"], np.arange(3))


KILLED_WRITER = textwrap.dedent("""
    import sys, time, numpy as np
    sys.path.insert(0, {repo!r})
    from tinydl.serialization import save

    write_array = np.lib.format.write_array
    def write_then_stall(*args, **kwargs):      # the first array is written, then the writer hangs mid-save
        write_array(*args, **kwargs)
        print("mid-write", flush=True)
        time.sleep(60)
    np.lib.format.write_array = write_then_stall
    save({{"big": np.full(1_000_000, 2.0), "v": np.full(3, 2.0)}}, {path!r})
""")


def test_sigkill_during_save_leaves_the_old_checkpoint_intact(tmp_path):
    path = tmp_path / "ckpt"
    save({"v": np.full(3, 1.0)}, path)
    before = path.read_bytes()
    writer = subprocess.Popen([sys.executable, "-c", KILLED_WRITER.format(repo=str(REPO), path=str(path))],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline().strip() == "mid-write"
        partial = [p for p in tmp_path.iterdir() if p.name != "ckpt"]
        assert len(partial) == 1 and partial[0].stat().st_size > 0
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait()
        writer.stdout.close()
    assert writer.returncode == -signal.SIGKILL
    assert path.read_bytes() == before
    np.testing.assert_array_equal(load(path)["v"], np.full(3, 1.0))
    save({"v": np.full(3, 3.0)}, path)                               # the litter does not get in the way
    np.testing.assert_array_equal(load(path)["v"], np.full(3, 3.0))


def test_truncated_checkpoints_are_refused_naming_the_path(tmp_path):
    save({"w": np.arange(1000.0), "epoch": 1}, tmp_path / "good")
    data = (tmp_path / "good").read_bytes()
    for size in (len(data) - 1, len(data) - 30, len(data) // 2, 10):
        (tmp_path / "cut").write_bytes(data[:size])
        with pytest.raises(CheckpointError, match=rf"{tmp_path / 'cut'}.*truncated or corrupted.*{size} bytes"):
            load(tmp_path / "cut")


def test_corrupted_bytes_are_detected(tmp_path):
    save({"w": np.arange(1000.0)}, tmp_path / "ckpt")
    data = bytearray((tmp_path / "ckpt").read_bytes())
    position = data.find(np.arange(1000.0).tobytes()[800:808])
    data[position] ^= 0xFF
    (tmp_path / "ckpt").write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"corrupted.*arrays/w\.npy.*CRC"):
        load(tmp_path / "ckpt")


def write_zip(path, members):
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)


def test_foreign_files_are_refused(tmp_path):
    cases = {
        "random": (lambda p: p.write_bytes(b"hello, world"), r"does not start like a zip archive"),
        "empty": (lambda p: p.write_bytes(b""), r"is empty"),
        "npz": (lambda p: np.savez(p, a=np.arange(3)), r"zip archive but not a tinydl checkpoint: no manifest"),
        "other": (lambda p: write_zip(p, {"manifest.json": json.dumps({"format": "keras"})}),
                  r"format tag 'keras', expected 'tinydl-checkpoint'"),
        "newer": (lambda p: write_zip(p, {"manifest.json": json.dumps(
            {"format": "tinydl-checkpoint", "version": 99, "root": {"type": "none"}})}), r"version 99.*version 1"),
        "json": (lambda p: write_zip(p, {"manifest.json": "{not json"}), r"corrupted: unreadable manifest"),
        "node": (lambda p: write_zip(p, {"manifest.json": json.dumps(
            {"format": "tinydl-checkpoint", "version": 1, "root": {"type": "lambda"}})}), r"unknown entry"),
        "dangling": (lambda p: write_zip(p, {"manifest.json": json.dumps(
            {"format": "tinydl-checkpoint", "version": 1, "root": {"type": "ndarray", "array": "arrays/x.npy"}})}),
            r"names array 'arrays/x\.npy', which is not in the archive"),
    }
    for name, (write, message) in cases.items():
        path = tmp_path / name
        write(path)
        path = path if path.exists() else path.with_suffix(".npz")
        with pytest.raises(CheckpointError, match=rf"{path}.*{message}"):
            load(path)


def test_a_pytorch_checkpoint_is_named_as_foreign(tmp_path):
    torch = pytest.importorskip("torch")
    torch.save({"w": torch.zeros(2)}, tmp_path / "model.pt")
    with pytest.raises(CheckpointError, match=r"not a tinydl checkpoint: no manifest.*PyTorch"):
        load(tmp_path / "model.pt")


class CreatesAFile:
    """Unpickling an instance calls open(path, "w"): a stand-in for arbitrary code."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return open, (self.path, "w")


def test_a_pickle_file_is_refused_and_nothing_in_it_runs(tmp_path):
    marker = tmp_path / "pwned"
    for protocol in (2, 4, 5):
        (tmp_path / "ckpt.pkl").write_bytes(pickle.dumps({"w": CreatesAFile(marker)}, protocol=protocol))
        with pytest.raises(CheckpointError, match=rf"ckpt\.pkl is a pickle file \(protocol {protocol}\)"):
            load(tmp_path / "ckpt.pkl")
    assert not marker.exists()


def test_a_pickled_array_inside_a_checkpoint_is_refused_and_nothing_runs(tmp_path):
    marker = tmp_path / "pwned"
    payload = io.BytesIO()
    np.lib.format.write_array(payload, np.array([CreatesAFile(marker)], dtype=object), allow_pickle=True)
    write_zip(tmp_path / "ckpt", {
        "manifest.json": json.dumps({"format": "tinydl-checkpoint", "version": 1,
                                     "root": {"type": "ndarray", "array": "arrays.npy"}}),
        "arrays.npy": payload.getvalue()})
    with pytest.raises(CheckpointError, match=r"array 'arrays\.npy' holds pickled objects; refused"):
        load(tmp_path / "ckpt")
    assert not marker.exists()


def test_a_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing-here"):
        load(tmp_path / "nothing-here")


def test_loading_onto_a_cuda_device(tmp_path):
    from tinydl.backend import is_available
    save({"w": Tensor(np.arange(3.0, dtype=np.float32)), "a": np.arange(2)}, tmp_path / "ckpt")
    if is_available("cuda"):
        loaded = load(tmp_path / "ckpt", device="cuda")
        assert str(loaded["w"].device) == "cuda:0" and isinstance(loaded["a"], np.ndarray)
        save(loaded, tmp_path / "again")                          # CuPy-held tensors save too
        assert_same(load(tmp_path / "again")["w"], Tensor(np.arange(3.0, dtype=np.float32)))
        return
    with pytest.raises(RuntimeError, match="cuda.*CuPy|CuPy.*cuda"):
        load(tmp_path / "ckpt", device="cuda")
