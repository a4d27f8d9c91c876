"""Tests of the torch-free, code-execution-free PyTorch checkpoint reader."""

from __future__ import annotations

import builtins
import collections
import hashlib
import io
import json
import os
import pickle
import struct
import sys
import types
import zipfile
from pathlib import Path

import numpy as np
import pytest

from panns_keras.convert.torch_format import (
    CheckpointError,
    load_checkpoint_object,
    load_state_dict_from_checkpoint,
    read_torch_checkpoint,
)

GOLDEN = Path(__file__).resolve().parents[1] / "assets" / "golden"
FORMATS = ("zip", "legacy")


# --------------------------------------------------------------------------------------
# genuine checkpoints against the golden weights
# --------------------------------------------------------------------------------------


def _golden_weights(model: str) -> tuple[dict[str, np.ndarray], dict]:
    """All state_dict entries of the golden npz except the derived front-end buffers."""
    z = np.load(GOLDEN / f"{model}.npz")
    meta = json.loads(str(z["meta"]))
    weights = {}
    for key in meta["state_dict_keys"]:
        if "w/" + key in z:
            weights[key] = z["w/" + key]
        elif "seed/" + key in z:
            rng = np.random.default_rng(int(z["seed/" + key]))
            w = rng.standard_normal(tuple(z["shape/" + key]), dtype=np.float32)
            weights[key] = w * np.float32(z["scale/" + key])
            digest = hashlib.sha256(np.ascontiguousarray(weights[key], "<f4").tobytes())
            assert digest.hexdigest() == meta["seeded_sha256"][key]
        else:
            assert key in meta["derived_names"]
    return weights, meta


@pytest.fixture(scope="module")
def golden_weights():
    cache: dict[str, tuple[dict[str, np.ndarray], dict]] = {}

    def get(model: str):
        if model not in cache:
            cache[model] = _golden_weights(model)
        return cache[model]

    return get


@pytest.fixture(scope="module")
def all_ckpts(leenet11_ckpts, cnn6_ckpts):
    return {"LeeNet11": leenet11_ckpts, "Cnn6": cnn6_ckpts}


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("model", ["LeeNet11", "Cnn6"])
def test_genuine_checkpoint_matches_golden_weights(all_ckpts, golden_weights, model, fmt):
    weights, meta = golden_weights(model)
    state, extra = load_state_dict_from_checkpoint(all_ckpts[model][fmt])
    assert extra == {"iteration": 0}
    assert list(state) == meta["state_dict_keys"]
    for key, expected in weights.items():
        got = state[key]
        assert got.dtype == expected.dtype, key
        assert got.shape == expected.shape, key
        assert got.flags.c_contiguous, key
        np.testing.assert_array_equal(got, expected, err_msg=key)
    for key in meta["derived_names"]:
        assert state[key].dtype == np.float32
        assert np.isfinite(state[key]).all()
    tracked = [k for k in state if k.endswith("num_batches_tracked")]
    assert tracked
    for key in tracked:
        assert state[key].dtype == np.int64 and state[key].shape == ()
        assert int(state[key]) == 1000


def test_cnn6_front_end_buffers(cnn6_ckpts):
    z = np.load(GOLDEN / "Cnn6.npz")
    meta = json.loads(str(z["meta"]))
    cfg = meta["config"]
    zip_state = read_torch_checkpoint(cnn6_ckpts["zip"])
    legacy_state = read_torch_checkpoint(cnn6_ckpts["legacy"])
    n_freq = cfg["window_size"] // 2 + 1
    shapes = {
        "spectrogram_extractor.stft.conv_real.weight": (n_freq, 1, cfg["window_size"]),
        "spectrogram_extractor.stft.conv_imag.weight": (n_freq, 1, cfg["window_size"]),
        "logmel_extractor.melW": (n_freq, cfg["mel_bins"]),
    }
    for key, shape in shapes.items():
        assert zip_state[key].shape == shape
        np.testing.assert_array_equal(zip_state[key], legacy_state[key])
    # The STFT bases are stored transposed (non-contiguous strides): row 0 of the real
    # part is the periodic Hann window, and the imaginary part of the DC row is zero.
    n = np.arange(cfg["window_size"])
    hann = 0.5 - 0.5 * np.cos(2 * np.pi * n / cfg["window_size"])
    real = zip_state["spectrogram_extractor.stft.conv_real.weight"]
    np.testing.assert_allclose(real[0, 0], hann, atol=1e-6)
    assert not zip_state["spectrogram_extractor.stft.conv_imag.weight"][0].any()


def test_cnn6_skeleton_rebuild_is_bit_exact(cnn6_ckpts):
    spec = json.loads(
        (
            Path(__file__).resolve().parents[1]
            / "assets"
            / "ckpt"
            / "cnn6_skeleton"
            / "skeleton.json"
        ).read_text()
    )
    for fmt in FORMATS:
        data = cnn6_ckpts[fmt].read_bytes()
        assert hashlib.sha256(data).hexdigest() == spec["files"][fmt]["sha256"]


def test_read_torch_checkpoint_returns_ordered_state_dict(leenet11_ckpts):
    state = read_torch_checkpoint(leenet11_ckpts["zip"])
    assert isinstance(state, collections.OrderedDict)
    assert all(isinstance(v, np.ndarray) for v in state.values())
    obj = load_checkpoint_object(str(leenet11_ckpts["legacy"]))
    assert set(obj) == {"iteration", "model"}


# --------------------------------------------------------------------------------------
# broken files
# --------------------------------------------------------------------------------------


def _write(tmp_path: Path, data: bytes, name: str = "broken.pth") -> Path:
    out = tmp_path / name
    out.write_bytes(data)
    return out


def _legacy_main_pickle_start(data: bytes) -> int:
    f = io.BytesIO(data)
    for _ in range(3):  # magic number, protocol version, sys info: plain values only
        pickle.load(f)
    return f.tell()


@pytest.mark.parametrize("fmt", FORMATS)
def test_corrupted_file_raises(tmp_path, leenet11_ckpts, fmt):
    data = bytearray(leenet11_ckpts[fmt].read_bytes())
    if fmt == "zip":
        # the middle of the file lies inside a storage member: the CRC-32 check fails
        middle = len(data) // 2
        data[middle : middle + 16] = bytes(b ^ 0xFF for b in data[middle : middle + 16])
    else:
        # the legacy format has no checksum on raw storage bytes; corrupt its pickle
        middle = _legacy_main_pickle_start(bytes(data)) + 1500
        data[middle : middle + 16] = b"\xff" * 16
    path = _write(tmp_path, bytes(data))
    with pytest.raises(CheckpointError, match="broken.pth") as info:
        read_torch_checkpoint(path)
    assert "\n" not in str(info.value)


def test_corrupted_zip_pickle_member_raises(tmp_path, leenet11_ckpts):
    data = bytearray(leenet11_ckpts["zip"].read_bytes())
    at = data.index(b"conv_block1")  # inside data.pkl
    data[at : at + 4] = b"XXXX"
    path = _write(tmp_path, bytes(data))
    with pytest.raises(CheckpointError, match="CRC"):
        read_torch_checkpoint(path)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("keep", [0.5, 0.999, 1000, 100, 10, 1, -1])
def test_truncated_file_raises(tmp_path, leenet11_ckpts, fmt, keep):
    data = leenet11_ckpts[fmt].read_bytes()
    n = int(len(data) * keep) if isinstance(keep, float) else keep % len(data)
    path = _write(tmp_path, data[:n])
    with pytest.raises(CheckpointError, match="broken.pth"):
        read_torch_checkpoint(path)


def test_trailing_garbage_after_legacy_storages_raises(tmp_path, leenet11_ckpts):
    data = leenet11_ckpts["legacy"].read_bytes() + b"\x00" * 8
    path = _write(tmp_path, data)
    with pytest.raises(CheckpointError, match="trailing"):
        read_torch_checkpoint(path)


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"hello, this is a text file\nnot a checkpoint\n",
        np.random.default_rng(0).integers(1, 128, 4096, dtype=np.uint8).tobytes(),
        b"\x80\x02}q\x00.",  # a pickle, but no torch magic number
        b"\x80",  # a pickle header and nothing else
    ],
    ids=["empty", "text", "random", "plain-pickle", "pickle-byte"],
)
def test_not_a_checkpoint_raises(tmp_path, content):
    path = tmp_path / "thing.pth"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match="thing.pth"):
        read_torch_checkpoint(path)


def test_zip_without_data_pkl_raises(tmp_path):
    path = tmp_path / "weights.npz"
    np.savez(path, a=np.zeros(3))
    with pytest.raises(CheckpointError, match="not a PyTorch checkpoint"):
        read_torch_checkpoint(path)


def test_missing_path_and_directory_raise(tmp_path):
    with pytest.raises(CheckpointError, match="no such file"):
        read_torch_checkpoint(tmp_path / "nope.pth")
    with pytest.raises(CheckpointError, match="directory"):
        read_torch_checkpoint(tmp_path)


def test_non_state_dict_content_raises(tmp_path):
    path = _write_torch_zip(tmp_path / "list.pth", [1, 2, 3])
    with pytest.raises(CheckpointError, match="no state_dict"):
        read_torch_checkpoint(path)
    path = _write_torch_zip(tmp_path / "mixed.pth", {"a": 1.0})
    with pytest.raises(CheckpointError, match="not a tensor"):
        read_torch_checkpoint(path)


# --------------------------------------------------------------------------------------
# malicious pickles
# --------------------------------------------------------------------------------------


class _SystemCall:
    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


class _EvalCall:
    def __init__(self, code: str) -> None:
        self.code = code

    def __reduce__(self):
        return (builtins.eval, (self.code,))


def _evil_objects(marker: Path):
    return {
        "os.system": _SystemCall(f"touch {marker}"),
        "builtins.eval": _EvalCall(f"open({str(marker)!r}, 'w').close()"),
    }


@pytest.mark.parametrize("kind", ["os.system", "builtins.eval"])
@pytest.mark.parametrize("protocol", [2, 4])
def test_malicious_raw_pickle_is_refused(tmp_path, kind, protocol):
    marker = tmp_path / "SOMEFILE"
    path = tmp_path / "evil.pth"
    path.write_bytes(pickle.dumps({"model": _evil_objects(marker)[kind]}, protocol=protocol))
    with pytest.raises(CheckpointError, match="possible code execution"):
        read_torch_checkpoint(path)
    assert not marker.exists()


@pytest.mark.parametrize("kind", ["os.system", "builtins.eval"])
@pytest.mark.parametrize("layout", ["zip", "legacy"])
def test_malicious_pickle_in_torch_layout_is_refused(tmp_path, fake_torch, kind, layout):
    marker = tmp_path / "SOMEFILE"
    evil = _evil_objects(marker)[kind]
    obj = {"iteration": 1, "model": {"w": FakeTensor.of(np.ones(3, np.float32))}, "sampler": evil}
    writer = _write_torch_zip if layout == "zip" else _write_torch_legacy
    path = writer(tmp_path / "evil.pth", obj)
    with pytest.raises(CheckpointError, match=r"evil\.pth: refuses to load global"):
        load_state_dict_from_checkpoint(path)
    assert not marker.exists()


def test_malicious_global_in_persistent_id_is_refused(tmp_path):
    marker = tmp_path / "SOMEFILE"

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            return ("storage", _SystemCall(f"touch {marker}"), "0", "cpu", 1) if obj == 7 else None

    buf = io.BytesIO()
    Pickler(buf, protocol=2).dump({"model": 7})
    path = tmp_path / "evil.pth"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("archive/data.pkl", buf.getvalue())
        zf.writestr("archive/data/0", b"\x00" * 4)
    with pytest.raises(CheckpointError, match="possible code execution"):
        read_torch_checkpoint(path)
    assert not marker.exists()


# --------------------------------------------------------------------------------------
# synthetic torch-layout files (strides, offsets, dtypes, wrappers)
# --------------------------------------------------------------------------------------

_FAKE_TORCH = "faketorch_for_tests"
_FAKE_UTILS = "faketorch_for_tests_utils"
_STORAGE_NAMES = {
    "float32": "FloatStorage",
    "float64": "DoubleStorage",
    "float16": "HalfStorage",
    "int64": "LongStorage",
    "int32": "IntStorage",
    "int16": "ShortStorage",
    "int8": "CharStorage",
    "uint8": "ByteStorage",
    "bool": "BoolStorage",
}


class FakeStorage:
    def __init__(self, key: str, data: np.ndarray) -> None:
        self.key = key
        self.data = np.ascontiguousarray(data).reshape(-1)


class FakeTensor:
    """Pickles like a torch tensor: ``_rebuild_tensor_v2(storage, offset, size, stride, ...)``."""

    _counter = 0

    def __init__(self, storage, offset, size, stride, parameter=False):
        self.args = (storage, offset, tuple(size), tuple(stride))
        self.parameter = parameter

    @classmethod
    def of(cls, array: np.ndarray) -> FakeTensor:
        cls._counter += 1
        storage = FakeStorage(str(cls._counter), array)
        stride = tuple(s // array.itemsize for s in np.ascontiguousarray(array).strides)
        return cls(storage, 0, array.shape, stride)

    def __reduce__(self):
        utils = sys.modules[_FAKE_UTILS]
        rebuilt = (utils._rebuild_tensor_v2, (*self.args, False, collections.OrderedDict()))
        if self.parameter:
            return (utils._rebuild_parameter, (_Rebuilt(rebuilt), False, collections.OrderedDict()))
        return rebuilt


class _Rebuilt:
    def __init__(self, reduce_value):
        self.reduce_value = reduce_value

    def __reduce__(self):
        return self.reduce_value


@pytest.fixture
def fake_torch(monkeypatch):
    """Register stand-in modules so that pickle can name torch-like globals.

    They are registered under test-only names; the writer then renames the globals in the
    protocol-2 pickle text (``c<module>\\n<name>\\n``) to ``torch`` / ``torch._utils``.
    """
    torch_mod = types.ModuleType(_FAKE_TORCH)
    utils_mod = types.ModuleType(_FAKE_UTILS)
    for name in _STORAGE_NAMES.values():
        cls = type(name, (), {"__module__": _FAKE_TORCH})
        setattr(torch_mod, name, cls)

    def _rebuild_tensor_v2(*args):
        raise AssertionError("never called")

    def _rebuild_parameter(*args):
        raise AssertionError("never called")

    for fn in (_rebuild_tensor_v2, _rebuild_parameter):
        fn.__module__ = _FAKE_UTILS
        fn.__qualname__ = fn.__name__
        setattr(utils_mod, fn.__name__, fn)
    monkeypatch.setitem(sys.modules, _FAKE_TORCH, torch_mod)
    monkeypatch.setitem(sys.modules, _FAKE_UTILS, utils_mod)
    return torch_mod


def _dump_torch_pickle(obj, legacy: bool) -> tuple[bytes, dict[str, FakeStorage]]:
    storages: dict[str, FakeStorage] = {}

    class Pickler(pickle.Pickler):
        def persistent_id(self, item):
            if not isinstance(item, FakeStorage):
                return None
            storages[item.key] = item
            storage_type = getattr(sys.modules[_FAKE_TORCH], _STORAGE_NAMES[item.data.dtype.name])
            pid = ("storage", storage_type, item.key, "cpu", item.data.size)
            return (*pid, None) if legacy else pid

    buf = io.BytesIO()
    Pickler(buf, protocol=2).dump(obj)
    data = buf.getvalue()
    data = data.replace(f"c{_FAKE_UTILS}\n".encode(), b"ctorch._utils\n")
    data = data.replace(f"c{_FAKE_TORCH}\n".encode(), b"ctorch\n")
    assert _FAKE_TORCH.encode() not in data
    return data, storages


def _write_torch_zip(path: Path, obj, byteorder: str = "little") -> Path:
    data, storages = _dump_torch_pickle(obj, legacy=False)
    prefix = path.stem
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(f"{prefix}/data.pkl", data)
        zf.writestr(f"{prefix}/byteorder", byteorder)
        for key, storage in storages.items():
            order = "<" if byteorder == "little" else ">"
            raw = storage.data.astype(storage.data.dtype.newbyteorder(order)).tobytes()
            zf.writestr(f"{prefix}/data/{key}", raw)
        zf.writestr(f"{prefix}/version", "3\n")
    return path


def _write_torch_legacy(path: Path, obj) -> Path:
    data, storages = _dump_torch_pickle(obj, legacy=True)
    sys_info = {
        "protocol_version": 1001,
        "little_endian": True,
        "type_sizes": {"short": 2, "int": 4, "long": 4},
    }
    with open(path, "wb") as f:
        for header in (0x1950A86A20F9469CFC6C, 1001, sys_info):
            pickle.dump(header, f, protocol=2)
        f.write(data)
        pickle.dump(sorted(storages), f, protocol=2)
        for key in sorted(storages):
            storage = storages[key]
            f.write(struct.pack("<q", storage.data.size))
            f.write(storage.data.astype(storage.data.dtype.newbyteorder("<")).tobytes())
    return path


@pytest.mark.parametrize("layout", ["zip", "legacy", "zip-big-endian"])
def test_synthetic_strides_offsets_and_dtypes(tmp_path, fake_torch, layout):
    base = np.arange(24, dtype=np.float32) * 0.5 - 3.0
    shared = FakeStorage("shared", base)
    expected = {
        # a [4, 6] tensor stored transposed: storage holds its [6, 4] transpose
        "transposed": (FakeTensor(shared, 0, (4, 6), (1, 4)), base.reshape(6, 4).T),
        # a view with a storage offset and a step
        "offset_view": (
            FakeTensor(shared, 5, (3, 2), (6, 2)),
            np.lib.stride_tricks.as_strided(base[5:], (3, 2), (24, 8)),
        ),
        # broadcast (zero stride), like torch's expand
        "expanded": (FakeTensor(shared, 2, (3, 4), (0, 1)), np.tile(base[2:6], (3, 1))),
        "scalar": (
            FakeTensor(FakeStorage("s", np.array([7], np.int64)), 0, (), ()),
            np.array(7, np.int64),
        ),
        "empty": (
            FakeTensor(FakeStorage("e", np.zeros(0, np.float32)), 0, (0, 3), (3, 1)),
            np.zeros((0, 3), np.float32),
        ),
    }
    rng = np.random.default_rng(1)
    for dtype in ("float64", "float16", "int64", "int32", "int16", "int8", "uint8", "bool"):
        arr = np.abs(rng.standard_normal((2, 3, 4)) * 50).astype(dtype)
        expected[f"dtype_{dtype}"] = (FakeTensor.of(arr), arr)
    param = FakeTensor.of(np.full((2, 2), 1.5, np.float32))
    param.parameter = True
    expected["parameter"] = (param, np.full((2, 2), 1.5, np.float32))

    model = collections.OrderedDict((f"module.{k}", t) for k, (t, _) in expected.items())
    obj = {"iteration": 42, "model": model, "sampler": {"queue": [1, 2], "name": "x"}}
    if layout == "legacy":
        path = _write_torch_legacy(tmp_path / "synthetic.pth", obj)
    else:
        order = "big" if layout.endswith("big-endian") else "little"
        path = _write_torch_zip(tmp_path / "synthetic.pth", obj, byteorder=order)

    state, extra = load_state_dict_from_checkpoint(path)
    assert extra == {"iteration": 42, "sampler": {"queue": [1, 2], "name": "x"}}
    assert list(state) == list(expected)  # "module." stripped, order kept
    for key, (_, want) in expected.items():
        got = state[key]
        assert got.dtype == want.dtype and got.dtype.isnative, key
        assert got.shape == want.shape, key
        assert got.flags.c_contiguous and got.flags.writeable, key
        np.testing.assert_array_equal(got, want, err_msg=key)
    # tensors sharing a storage are independent copies
    state["transposed"][0, 0] = 99
    assert state["offset_view"][0, 0] == base[5]


def test_bare_state_dict(tmp_path, fake_torch):
    arr = np.arange(6, dtype=np.float32).reshape(2, 3)
    path = _write_torch_zip(tmp_path / "bare.pth", {"fc.weight": FakeTensor.of(arr)})
    state, extra = load_state_dict_from_checkpoint(path)
    assert extra == {}
    np.testing.assert_array_equal(state["fc.weight"], arr)


def test_tensor_outside_its_storage_raises(tmp_path, fake_torch):
    storage = FakeStorage("0", np.zeros(6, np.float32))
    path = _write_torch_zip(
        tmp_path / "oob.pth", {"model": {"w": FakeTensor(storage, 2, (2, 3), (3, 1))}}
    )
    with pytest.raises(CheckpointError, match="exceeds its storage"):
        read_torch_checkpoint(path)


def test_missing_storage_member_raises(tmp_path, fake_torch):
    path = _write_torch_zip(
        tmp_path / "full.pth", {"model": {"w": FakeTensor.of(np.ones(3, np.float32))}}
    )
    stripped = tmp_path / "stripped.pth"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(stripped, "w") as dst:
        for info in src.infolist():
            if "/data/" not in info.filename:
                dst.writestr(info, src.read(info))
    with pytest.raises(CheckpointError, match="missing"):
        read_torch_checkpoint(stripped)


def test_training_checkpoint_with_numpy_sampler_state(tmp_path, fake_torch):
    """PANNs training checkpoints add a 'sampler' entry holding numpy arrays and scalars."""
    model = collections.OrderedDict(w=FakeTensor.of(np.ones((2, 2), np.float32)))
    model._metadata = collections.OrderedDict({"": {"version": 1}})  # as torch's state_dict
    sampler = {
        "indexes_per_class": [np.arange(5), np.array([3, 1], dtype=np.int64)],
        "queue": [np.int64(3), np.int64(7)],
        "pointers_of_classes": [0, 1],
        "random_state": ("MT19937", np.arange(4, dtype=np.uint32), 1, 0, 0.0),
        "fortran": np.asfortranarray(np.arange(6, dtype=np.float32).reshape(2, 3)),
    }
    path = _write_torch_legacy(
        tmp_path / "train.pth", {"iteration": 1000, "model": model, "sampler": sampler}
    )
    state, extra = load_state_dict_from_checkpoint(path)
    assert list(state) == ["w"]
    assert extra["iteration"] == 1000
    got = extra["sampler"]
    np.testing.assert_array_equal(got["indexes_per_class"][1], [3, 1])
    assert got["queue"] == [3, 7] and got["queue"][0].dtype == np.int64
    np.testing.assert_array_equal(got["random_state"][1], np.arange(4))
    np.testing.assert_array_equal(got["fortran"], sampler["fortran"])


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        # BUILD on an allow-listed function (would set its __defaults__)
        (
            b"\x80\x02ctorch._utils\n_rebuild_tensor_v2\n}X\x0c\x00\x00\x00__defaults__(K\x01tsb.",
            "refuses to modify",
        ),
        # BUILD with slot state on an allow-listed class
        (
            b"\x80\x02ccollections\nOrderedDict\nN}X\x03\x00\x00\x00fooK\x01s\x86b.",
            "refuses to modify",
        ),
        # numpy object arrays / dtypes could smuggle arbitrary objects
        (b"\x80\x02cnumpy\ndtype\nX\x01\x00\x00\x00O\x89\x88\x87R.", "not a plain numeric"),
        # a persistent id that is not a storage (torch's legacy 'module' ids)
        (b"\x80\x02X\x06\x00\x00\x00moduleX\x01\x00\x00\x00x\x86Q.", "only storages"),
    ],
    ids=["build-function", "build-class", "object-dtype", "module-pid"],
)
def test_abuse_of_allowed_globals_is_refused(tmp_path, payload, message):
    path = tmp_path / "abuse.pth"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("archive/data.pkl", payload)
    with pytest.raises(CheckpointError, match=f"abuse.pth: .*{message}"):
        load_checkpoint_object(path)
