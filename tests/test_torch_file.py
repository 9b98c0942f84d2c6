"""Tests for depth_tools.torch_file: reading torch.save files without PyTorch."""

import collections
import os
import pickle
import struct
import zipfile

import numpy as np
import pytest

from pynet_bokeh.weights.torch_file import (
    LEGACY_MAGIC,
    TorchFileError,
    UnsafeTorchFileError,
    _Call,
    _dumps,
    _Global,
    _PersistentId,
    _tensor_call,
    load_torch_file,
    read_torch_file,
    save_torch_zip,
    state_dict_from,
)


@pytest.fixture(scope="module")
def fixture_pth(fixtures_dir):
    return fixtures_dir / "megadepth" / "megadepth_seed0_net_G.pth"


@pytest.fixture(scope="module")
def fixture_tensors(fixture_pth):
    return load_torch_file(fixture_pth)


def _legacy_bytes(main_obj, keys_and_data, little_endian=True):
    """A legacy torch.save stream: magic, protocol, sys_info, main pickle, keys, raw storages."""
    order = "<" if little_endian else ">"
    parts = [
        pickle.dumps(LEGACY_MAGIC, protocol=2),
        pickle.dumps(1001, protocol=2),
        pickle.dumps({"protocol_version": 1001, "little_endian": little_endian}, protocol=2),
        _dumps(main_obj),
        pickle.dumps([k for k, _ in keys_and_data], protocol=2),
    ]
    for _, arr in keys_and_data:
        parts.append(struct.pack(order + "q", arr.size))
        parts.append(arr.astype(arr.dtype.newbyteorder(order)).tobytes())
    return b"".join(parts)


def _zip_bytes(path, main_obj, blobs):
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("weights/data.pkl", _dumps(main_obj))
        zf.writestr("weights/byteorder", b"little")
        for key, arr in blobs.items():
            zf.writestr(f"weights/data/{key}", arr.astype("<" + arr.dtype.str[1:]).tobytes())
        zf.writestr("weights/version", b"3\n")


def test_reads_legacy_fixture_written_by_pytorch(fixture_tensors):
    sd = fixture_tensors
    assert len(sd) == 624
    assert sum(v.size for v in sd.values()) == 5_371_297
    assert sd["module.0.weight"].shape == (128, 3, 7, 7)
    assert sd["module.3.0.0.1.2.3.weight"].shape == (32, 32, 5, 5)
    assert sd["module.4.weight"].shape == (1, 64, 3, 3)
    assert all(v.dtype == np.float32 for v in sd.values())
    assert all(k.startswith("module.") for k in sd)
    # Seeded ternary weights: a conv weight holds exactly three distinct values.
    assert np.unique(sd["module.0.weight"]).size == 3


def test_zip_round_trip_of_fixture_is_exact_and_torch_shaped(fixture_tensors, tmp_path):
    path = save_torch_zip(tmp_path / "net.pth", fixture_tensors)
    back = load_torch_file(path)
    assert list(back) == list(fixture_tensors)
    for k, v in fixture_tensors.items():
        np.testing.assert_array_equal(back[k], v, err_msg=k)
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        assert names[:2] == ["archive/data.pkl", "archive/byteorder"]
        assert names[-1] == "archive/version"
        assert len(names) == 624 + 3
        assert zf.read("archive/byteorder") == b"little"
        for info in zf.infolist():
            assert info.compress_type == zipfile.ZIP_STORED
            data_start = info.header_offset + 30 + len(info.filename) + len(info.extra)
            assert data_start % 64 == 0, info.filename
    assert [p.name for p in tmp_path.iterdir()] == ["net.pth"]  # no temp file left
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # an ordinary file, not mkstemp's 0600


@pytest.mark.parametrize(
    "dtype", ["float32", "float64", "float16", "int64", "int32", "int16", "int8", "uint8", "bool"]
)
def test_zip_round_trip_dtypes(tmp_path, dtype):
    rng = np.random.default_rng(0)
    arr = (rng.normal(size=(2, 3, 4)) * 50).astype(dtype)
    tensors = {"a": arr, "scalar": np.array(7, dtype), "empty": np.zeros((0, 3), dtype)}
    back = load_torch_file(save_torch_zip(tmp_path / "t.pth", tensors))
    for k, v in tensors.items():
        assert back[k].dtype == v.dtype and back[k].shape == v.shape
        np.testing.assert_array_equal(back[k], v)


def test_zip_writer_stores_non_contiguous_input_in_logical_order(tmp_path):
    base = np.arange(24, dtype=np.float64).reshape(4, 6)
    view = base[::2, 1::2].T  # strided, transposed
    back = load_torch_file(save_torch_zip(tmp_path / "t.pth", {"v": view}))
    np.testing.assert_array_equal(back["v"], view)


def test_writer_rejects_unsupported_dtype(tmp_path):
    with pytest.raises(TypeError, match="'c'.*complex64"):
        save_torch_zip(tmp_path / "t.pth", {"c": np.zeros(3, np.complex64)})


def test_reads_strided_views_sharing_one_storage(tmp_path):
    storage = np.arange(12, dtype=np.float32)
    obj = collections.OrderedDict(
        full=_tensor_call("FloatStorage", "s", 12, 0, (3, 4), (4, 1)),
        transposed=_tensor_call("FloatStorage", "s", 12, 0, (4, 3), (1, 4)),
        offset=_tensor_call("FloatStorage", "s", 12, 5, (2,), (3,)),
        broadcast=_tensor_call("FloatStorage", "s", 12, 2, (2, 3), (0, 1)),
    )
    _zip_bytes(tmp_path / "v.pth", obj, {"s": storage})
    sd = load_torch_file(tmp_path / "v.pth")
    full = storage.reshape(3, 4)
    np.testing.assert_array_equal(sd["full"], full)
    np.testing.assert_array_equal(sd["transposed"], full.T)
    np.testing.assert_array_equal(sd["offset"], [5.0, 8.0])
    np.testing.assert_array_equal(sd["broadcast"], [[2, 3, 4], [2, 3, 4]])
    sd["full"][0, 0] = -1  # results are independent copies
    assert sd["transposed"][0, 0] == 0


def test_tensor_past_its_storage_is_an_error(tmp_path):
    obj = {"bad": _tensor_call("FloatStorage", "s", 4, 2, (3,), (1,))}
    _zip_bytes(tmp_path / "bad.pth", obj, {"s": np.zeros(4, np.float32)})
    with pytest.raises(TorchFileError, match="bad.pth.*reaches past its storage"):
        load_torch_file(tmp_path / "bad.pth")


def test_reads_old_pytorch_legacy_variants(tmp_path):
    """PyTorch 0.2/0.3 style: _rebuild_tensor, 6-tuple ids with storage views, CUDA storages,
    big-endian data, a Parameter wrapper, an int64 storage."""
    root = np.arange(10, dtype=np.float32)
    longs = np.array([3, -1, 2**40], dtype=np.int64)

    def pid(stype, key, numel, view=None):
        return _PersistentId(("storage", stype, key, "cuda:0", numel, view))

    cuda_float = _Global("torch.cuda", "FloatStorage")
    old = _Global("torch._utils", "_rebuild_tensor")
    obj = collections.OrderedDict(
        whole=_Call(old, (pid(cuda_float, "r", 10), 0, (2, 5), (5, 1))),
        # A storage view: elements 4..9 of "r" under the key "v", then offset 1 inside it.
        viewed=_Call(old, (pid(cuda_float, "r", 10, ("v", 4, 6)), 1, (2, 2), (2, 1))),
        param=_Call(
            _Global("torch._utils", "_rebuild_parameter"),
            (_Call(old, (pid(_Global("torch", "LongStorage"), "l", 3), 0, (3,), (1,))), True),
        ),
    )
    for little in (True, False):
        path = tmp_path / f"old_{little}.pth"
        path.write_bytes(_legacy_bytes(obj, [("r", root), ("l", longs)], little_endian=little))
        sd = load_torch_file(path)
        np.testing.assert_array_equal(sd["whole"], root.reshape(2, 5))
        np.testing.assert_array_equal(sd["viewed"], [[5, 6], [7, 8]])
        np.testing.assert_array_equal(sd["param"], longs)
        assert sd["param"].dtype == np.int64 and sd["param"].dtype.isnative


def test_unwraps_nested_checkpoints(tmp_path):
    w = np.arange(4, dtype=np.float32).reshape(2, 2)
    tensors = {"w": _tensor_call("FloatStorage", "w", 4, 0, (2, 2), (2, 1))}
    for wrapper in ({"state_dict": tensors, "epoch": 3}, {"model": tensors, "optimizer": {}}):
        _zip_bytes(tmp_path / "n.pth", wrapper, {"w": w})
        sd = load_torch_file(tmp_path / "n.pth")
        assert list(sd) == ["w"]
        np.testing.assert_array_equal(sd["w"], w)
    assert read_torch_file(tmp_path / "n.pth")["optimizer"] == {}


def test_state_dict_from_explains_what_it_found():
    with pytest.raises(TorchFileError, match="top-level keys: 'epoch', 'lr'"):
        state_dict_from({"epoch": 3, "lr": 0.1}, source="ckpt.pth")
    with pytest.raises(TorchFileError, match="holds a list"):
        state_dict_from([np.zeros(2)])
    assert list(state_dict_from({"a": {"x": np.zeros(1)}, "b": 1})) == ["x"]


def test_refuses_non_allow_listed_global_without_running_it(tmp_path):
    marker = tmp_path / "pwned"
    evil = _Call(_Global("os", "system"), (f"touch {marker}",))
    _zip_bytes(tmp_path / "evil.pth", {"w": evil}, {})
    with pytest.raises(UnsafeTorchFileError, match=r"evil\.pth.*'os\.system'"):
        load_torch_file(tmp_path / "evil.pth")
    path = tmp_path / "evil_legacy.pth"
    path.write_bytes(_legacy_bytes({"w": evil}, []))
    with pytest.raises(UnsafeTorchFileError, match=r"evil_legacy\.pth.*'os\.system'"):
        load_torch_file(path)
    assert not marker.exists()


def test_refuses_pickled_module_class(tmp_path):
    obj = _Call(_Global("torch.nn.modules.conv", "Conv2d"), ())
    _zip_bytes(tmp_path / "model.pth", obj, {})
    with pytest.raises(UnsafeTorchFileError, match="torch.nn.modules.conv.Conv2d.*state_dict"):
        load_torch_file(tmp_path / "model.pth")


def test_bad_files_give_clear_errors(tmp_path, fixture_pth):
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        load_torch_file(tmp_path / "missing.pth")
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    with pytest.raises(TorchFileError, match="junk.pth.*not a torch.save file"):
        load_torch_file(junk)
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(fixture_pth.read_bytes()[:500_000])
    with pytest.raises(TorchFileError, match="truncated.pth.*truncated"):
        load_torch_file(truncated)
    with zipfile.ZipFile(tmp_path / "nopkl.pth", "w") as zf:
        zf.writestr("x/readme.txt", "hi")
    with pytest.raises(TorchFileError, match="without a data.pkl"):
        load_torch_file(tmp_path / "nopkl.pth")
