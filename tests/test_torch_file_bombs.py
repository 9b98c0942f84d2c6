"""Pickle and zip bombs in .pth files: refused fast, in little memory, naming the file.

Each bomb is loaded in a child process that reports the load's time and its own peak RSS
(VmHWM); an address-space cap keeps a regression from taking the machine down with it.
"""

import hashlib
import json
import pickle
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

from pynet_bokeh.weights.torch_file import (
    LEGACY_MAGIC,
    MAX_PICKLE_OPS,
    _dumps,
    _tensor_call,
    load_torch_file,
)

REPO = Path(__file__).resolve().parents[1]
GIB = 1 << 30

_CHILD = r"""
import json, resource, sys, time
resource.setrlimit(resource.RLIMIT_AS, (6 << 30, 6 << 30))  # a regression fails, not the host
from pynet_bokeh.weights.torch_file import load_torch_file
start = time.perf_counter()
try:
    sd = load_torch_file(sys.argv[1])
    out = {"error": None, "shapes": {k: list(v.shape) for k, v in sd.items()}}
except Exception as err:
    out = {"error": f"{type(err).__name__}: {err}"}
out["seconds"] = time.perf_counter() - start
# VmHWM, this process image's own peak: ru_maxrss on Linux keeps the peak of the image the
# child was forked from (a large pytest process), across exec.
with open("/proc/self/status") as status:
    hwm_kb = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
out["peak_rss_mb"] = hwm_kb / 1024
print(json.dumps(out))
"""


def _load_in_child(path):
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _sha(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


# --- bomb builders --------------------------------------------------------------------------


def _shared_nested_list_pickle(depth=60):
    """L0 = []; L_i = [L_{i-1}, L_{i-1}]: 2**depth list references from ~6 bytes a level."""
    out = bytearray(pickle.PROTO + b"\x02" + pickle.EMPTY_LIST + pickle.BINPUT + b"\x00")
    for i in range(1, depth + 1):
        prev = bytes([i - 1])
        out += pickle.MARK + pickle.BINGET + prev + pickle.BINGET + prev + pickle.LIST
        out += pickle.BINPUT + bytes([i])
    return bytes(out + pickle.STOP)


def _deep_list_pickle(depth=100_000):
    """[[[[...]]]] nested `depth` deep without sharing."""
    body = pickle.EMPTY_LIST * depth + pickle.APPEND * (depth - 1)
    return pickle.PROTO + b"\x02" + body + pickle.STOP


def _many_objects_pickle(n=MAX_PICKLE_OPS):
    """One list of `n` empty dicts: 2 bytes a dict, ~70 bytes each once built."""
    return (
        pickle.PROTO
        + b"\x02"
        + pickle.EMPTY_LIST
        + (pickle.EMPTY_DICT + pickle.APPEND) * n
        + pickle.STOP
    )


def _legacy(path, main_pickle, storages=()):
    """A legacy torch.save file: magic, protocol, sys_info, main pickle, keys, raw storages
    (`storages`: (key, declared element count, float32 data))."""
    parts = [
        pickle.dumps(LEGACY_MAGIC, protocol=2),
        pickle.dumps(1001, protocol=2),
        pickle.dumps({"protocol_version": 1001, "little_endian": True}, protocol=2),
        main_pickle,
        pickle.dumps([k for k, _, _ in storages], protocol=2),
    ]
    for _, numel, data in storages:
        parts += [struct.pack("<q", numel), np.asarray(data, "<f4").tobytes()]
    Path(path).write_bytes(b"".join(parts))
    return path


def _crc32_of_zeros(n):
    """zlib.crc32(bytes(n)) without touching n bytes: square-and-multiply of the CRC's
    zero-byte operator over GF(2) (zlib's crc32_combine)."""

    def times(mat, vec):
        total, i = 0, 0
        while vec:
            if vec & 1:
                total ^= mat[i]
            vec >>= 1
            i += 1
        return total

    def square(mat):
        return [times(mat, mat[k]) for k in range(32)]

    one_bit = [0xEDB88320] + [1 << k for k in range(31)]  # operator for one zero bit
    op = square(square(square(one_bit)))  # one zero byte
    crc = 0xFFFFFFFF
    while n:
        if n & 1:
            crc = times(op, crc)
        op = square(op)
        n >>= 1
    return crc ^ 0xFFFFFFFF


def _raw_zip(path, members):
    """A zip written by hand: members are (name, method, crc, uncompressed size, raw bytes)."""
    body, central = bytearray(), bytearray()
    for name, method, crc, usize, raw in members:
        name_b = name.encode()
        offset = len(body)
        body += struct.pack(
            "<IHHHHHIIIHH", 0x04034B50, 20, 0, method, 0, 0x21, crc, len(raw), usize, len(name_b), 0
        )
        body += name_b + raw
        central += struct.pack(
            "<IHHHHHHIIIHHHHHII",
            0x02014B50,
            20,
            20,
            0,
            method,
            0,
            0x21,
            crc,
            len(raw),
            usize,
            len(name_b),
            0,
            0,
            0,
            0,
            0,
            offset,
        )
        central += name_b
    end = struct.pack(
        "<IHHHHIIH", 0x06054B50, 0, 0, len(members), len(members), len(central), len(body), 0
    )
    Path(path).write_bytes(bytes(body + central + end))
    return path


def _stored(name, raw):
    return (name, 0, zlib.crc32(raw), len(raw), raw)


def _zip_with_pickle(path, pkl, data_members=()):
    members = [_stored("bomb/data.pkl", pkl), _stored("bomb/byteorder", b"little")]
    return _raw_zip(path, members + list(data_members) + [_stored("bomb/version", b"3\n")])


def _inflating_record(name, size):
    """A deflated record of `size` zero bytes, ~1 KB per MiB: identical full-flush blocks."""
    chunk = 1 << 20
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = comp.compress(bytes(chunk)) + comp.flush(zlib.Z_FULL_FLUSH)
    raw = block * (size // chunk) + comp.flush()
    return (name, 8, _crc32_of_zeros(size), size, raw)


def _tensor_pickle(numel, shape, stride):
    return _dumps({"weight": _tensor_call("FloatStorage", "0", numel, 0, shape, stride)})


# --- the bombs --------------------------------------------------------------------------------

BOMBS = {
    # the 801-byte file: a list 60 deep through shared references (2**60 when walked)
    "zip_shared_nested_lists": (
        lambda p: _zip_with_pickle(p, _shared_nested_list_pickle(60)),
        "nested more than",
    ),
    "legacy_shared_nested_lists": (
        lambda p: _legacy(p, _shared_nested_list_pickle(60)),
        "nested more than",
    ),
    # 30 deep (within the depth bound): 2**30 references when walked
    "zip_shared_lists_30_deep": (
        lambda p: _zip_with_pickle(p, _shared_nested_list_pickle(30)),
        "through shared references",
    ),
    "zip_deep_nesting": (lambda p: _zip_with_pickle(p, _deep_list_pickle()), "nested more than"),
    "legacy_many_objects": (
        lambda p: _legacy(p, _many_objects_pickle()),
        "operations, far more than a weights file",
    ),
    # the 2.6 MB file: a storage record that inflates to 2.5 GiB, one tensor over it
    "zip_storage_inflating_to_2.5GiB": (
        lambda p: _zip_with_pickle(
            p,
            _tensor_pickle(5 * GIB // 8, (5 * GIB // 8,), (1,)),
            [_inflating_record("bomb/data/0", 5 * GIB // 2)],
        ),
        "MiB in memory",
    ),
    # a 4-byte storage broadcast (stride 0) to 4 TiB of tensor
    "zip_broadcast_tensor": (
        lambda p: _zip_with_pickle(
            p,
            _tensor_pickle(1, (1 << 20, 1 << 20), (0, 0)),
            [_stored("bomb/data/0", np.float32(1).tobytes())],
        ),
        "MiB in memory",
    ),
    "legacy_broadcast_tensor": (
        lambda p: _legacy(p, _tensor_pickle(1, (1 << 20, 1 << 20), (0, 0)), [("0", 1, np.ones(1))]),
        "MiB in memory",
    ),
    # a storage record claiming 2 GiB of elements in a file of a few hundred bytes
    "legacy_storage_count_beyond_file": (
        lambda p: _legacy(p, _tensor_pickle(1 << 29, (4,), (1,)), [("0", 1 << 29, np.ones(4))]),
        "truncated or corrupt",
    ),
}


@pytest.mark.parametrize("kind", sorted(BOMBS))
def test_bomb_is_refused_fast_in_little_memory(tmp_path, kind):
    build, expected = BOMBS[kind]
    path = build(tmp_path / f"{kind}.pth")
    before = _sha(path)
    result = _load_in_child(path)
    assert result["error"] is not None, result
    assert result["error"].startswith("TorchFileError: "), result
    assert path.name in result["error"] and expected in result["error"], result
    assert result["seconds"] < 5.0, result
    assert result["peak_rss_mb"] < 1024, result
    assert _sha(path) == before
    print(
        f"{kind}: {path.stat().st_size} bytes, {result['seconds']:.2f} s, {result['peak_rss_mb']:.0f} MB"
    )


def test_inflating_record_reads_only_what_its_tensor_needs(tmp_path):
    """A 2.5 GiB record under a 4-element tensor is read 16 bytes far, not inflated whole."""
    size = 5 * GIB // 2
    path = _zip_with_pickle(
        tmp_path / "big_record.pth",
        _tensor_pickle(size // 4, (2, 2), (2, 1)),
        [_inflating_record("bomb/data/0", size)],
    )
    result = _load_in_child(path)
    assert result["error"] is None and result["shapes"] == {"weight": [2, 2]}, result
    assert result["seconds"] < 5.0 and result["peak_rss_mb"] < 1024, result
    np.testing.assert_array_equal(load_torch_file(path)["weight"], np.zeros((2, 2), np.float32))


def test_zip_bomb_helpers_make_valid_archives(tmp_path):
    """The hand-written zip and CRC are right (zipfile checks the CRC when reading to the end)."""
    import zipfile

    assert _crc32_of_zeros(3 << 20) == zlib.crc32(bytes(3 << 20))
    path = _raw_zip(tmp_path / "z.zip", [_inflating_record("zeros", 3 << 20)])
    with zipfile.ZipFile(path) as zf:
        assert zf.read("zeros") == bytes(3 << 20)


def test_reference_cycle_is_refused(tmp_path):
    cycle = (
        pickle.PROTO
        + b"\x02"
        + pickle.EMPTY_LIST
        + pickle.BINPUT
        + b"\x00"
        + pickle.BINGET
        + b"\x00"
        + pickle.APPEND
        + pickle.STOP
    )
    path = _zip_with_pickle(tmp_path / "cycle.pth", cycle)
    with pytest.raises(Exception, match=r"cycle\.pth.*reference cycle"):
        load_torch_file(path)
