"""Read and write PyTorch ``torch.save`` files with ``pickle`` + ``numpy`` only (no PyTorch).

Reads both formats:

- legacy (PyTorch < 1.6, or ``_use_new_zipfile_serialization=False``): pickles back to back
  (magic number, protocol 1001, sys-info dict, the object whose tensors name storages through
  persistent ids, the list of storage keys), then for each key in that list's order an int64
  element count and the raw bytes;
- zip (PyTorch >= 1.6): ``<name>/data.pkl``, ``<name>/data/<key>`` blobs, ``<name>/byteorder``.

A .pth file is untrusted input: unpickling resolves only the allow-listed globals below and
refuses anything else with :class:`UnsafeTorchFileError` naming the global and the file. It
cannot exhaust memory either: before anything is built or read, the pickle's operations are
counted (``MAX_PICKLE_OPS``, the zip ``data.pkl``'s declared size ``MAX_PICKLE_BYTES``); once
unpickled, and before any tensor data is read, the object graph is walked once for its nesting
depth (``MAX_DEPTH``) and the number of objects shared references expand to
(``MAX_OBJECTS``), every tensor is checked to lie inside its storage, each storage against its
record's size, and the tensors' total bytes against what the file's size can hold
(``MAX_EXPANSION`` x file size + ``EXPANSION_SLACK``). Zip records are read only as far as
the tensors need.

    from pynet_bokeh.weights.torch_file import load_torch_file, save_torch_zip
    tensors = load_torch_file("net_G.pth")          # {"module.0.weight": np.ndarray, ...}
    save_torch_zip("copy.pth", tensors)             # readable by torch.load
"""

from __future__ import annotations

import collections
import io
import pickle
import pickletools
import struct
import sys
import zipfile
from pathlib import Path

import numpy as np

from pynet_bokeh.errors import PynetBokehError
from pynet_bokeh.files import atomic_path

__all__ = [
    "TorchFileError",
    "UnsafeTorchFileError",
    "load_torch_file",
    "read_torch_file",
    "save_torch_zip",
    "state_dict_from",
]

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C

# Bounds on what a weights file may expand to. A state dict pickle takes ~33 operations per
# tensor and nests ~4 deep; real files are far inside these.
MAX_PICKLE_OPS = 300_000  # ~9,000 tensors (33 operations each in a state dict)
MAX_PICKLE_BYTES = 64 << 20
MAX_DEPTH = 32
MAX_OBJECTS = 2_000_000
MAX_EXPANSION = 8  # tensors' bytes in memory per byte of file (shared / stride-0 storages)
EXPANSION_SLACK = 64 << 20
LEGACY_PROTOCOL = 1001

# Storage class name -> (numpy dtype of the raw bytes, element size). bfloat16 has no numpy
# dtype: its raw uint16 bits are widened to float32 after the tensor is cut out.
_STORAGE_DTYPES = {
    "DoubleStorage": np.dtype(np.float64),
    "FloatStorage": np.dtype(np.float32),
    "HalfStorage": np.dtype(np.float16),
    "BFloat16Storage": np.dtype(np.uint16),
    "LongStorage": np.dtype(np.int64),
    "IntStorage": np.dtype(np.int32),
    "ShortStorage": np.dtype(np.int16),
    "CharStorage": np.dtype(np.int8),
    "ByteStorage": np.dtype(np.uint8),
    "BoolStorage": np.dtype(np.bool_),
}
_STORAGE_FOR_DTYPE = {
    dtype: name for name, dtype in _STORAGE_DTYPES.items() if name != "BFloat16Storage"
}


class TorchFileError(PynetBokehError, ValueError):
    """A file is not a readable torch.save file (truncated, corrupt, unsupported layout)."""


class UnsafeTorchFileError(TorchFileError):
    """A file asks to unpickle a global outside the allow-list."""


class _StorageType:
    """Stand-in for ``torch.FloatStorage`` and friends (``torch.cuda.*`` loads to CPU)."""

    def __init__(self, name):
        self.name = name
        self.dtype = _STORAGE_DTYPES[name]


class _Storage:
    """A storage named by a persistent id; ``data`` is filled in once its bytes are read."""

    def __init__(self, stype, key, numel):
        self.stype = stype
        self.key = key
        self.numel = numel
        self.data = None
        self.view = None  # (root _Storage, element offset) for pre-0.4 storage views
        self.needed = 0  # elements its tensors reach (checked before any data is read)

    def require(self, n, path):
        """Notes that a tensor reaches `n` elements into this storage; refuses past its end."""
        if n > self.numel:
            raise TorchFileError(
                f"{path}: a tensor reaches {n} elements into storage {self.key!r} of "
                f"{self.numel} elements: it reaches past its storage (the file is corrupt or "
                "truncated)"
            )
        self.needed = max(self.needed, n)
        if self.view is not None:
            root, offset = self.view
            root.require(offset + n, path)

    def array(self):
        if self.view is not None:
            root, offset = self.view
            return root.array()[offset : offset + self.numel]
        if self.data is None:
            raise TorchFileError(f"storage {self.key!r} has no data")
        return self.data


class _LazyTensor:
    """A tensor cut from a storage by offset, size and stride (elements), built on demand."""

    def __init__(self, storage, offset, size, stride):
        if not isinstance(storage, _Storage):
            raise TorchFileError(f"a tensor's storage is a {type(storage).__name__}")
        try:
            self.offset = int(offset)
            self.size = tuple(int(s) for s in size)
            self.stride = tuple(int(s) for s in stride)
        except (TypeError, ValueError) as err:
            raise TorchFileError(f"malformed tensor size or stride ({err})") from None
        self.storage = storage

    def numel(self):
        n = 1
        for s in self.size:
            n *= s
        return n

    def extent(self, path):
        """Elements of the storage this tensor reaches (0 when empty); refuses bad geometry."""
        if len(self.size) != len(self.stride):
            raise TorchFileError(f"{path}: tensor size {self.size} and stride {self.stride} differ")
        if self.offset < 0 or min(self.size + self.stride, default=0) < 0:
            raise TorchFileError(
                f"{path}: a tensor with negative size, stride or offset ({self.size}, "
                f"{self.stride}, {self.offset}): the file is corrupt"
            )
        if any(s == 0 for s in self.size):
            return 0
        return (
            self.offset + 1 + sum((n - 1) * s for n, s in zip(self.size, self.stride, strict=True))
        )

    def nbytes(self):
        bfloat16 = self.storage.stype.name == "BFloat16Storage"
        return self.numel() * (4 if bfloat16 else self.storage.stype.dtype.itemsize)

    def materialize(self, path):
        flat = self.storage.array()
        if any(s == 0 for s in self.size):
            out = np.empty(self.size, flat.dtype)
        else:
            if self.extent(path) > flat.size:  # checked before reading; kept as a guard
                raise TorchFileError(
                    f"{path}: a tensor reaches past its storage {self.storage.key!r}"
                )
            out = np.lib.stride_tricks.as_strided(
                flat[self.offset :],
                shape=self.size,
                strides=[s * flat.itemsize for s in self.stride],
                writeable=False,
            ).copy()
        out = out.astype(out.dtype.newbyteorder("="), copy=False)
        if self.storage.stype.name == "BFloat16Storage":
            out = (out.astype(np.uint32) << 16).view(np.float32)
        return out


def _rebuild_tensor(storage, storage_offset, size, stride, *_ignored):
    return _LazyTensor(storage, storage_offset, size, stride)


def _rebuild_parameter(data, *_ignored):
    return data


_ALLOWED_GLOBALS = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
}


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler resolving only ``_ALLOWED_GLOBALS`` and torch storage classes."""

    def __init__(self, file, path, storages=None):
        super().__init__(file, encoding="latin1")  # latin1: files written by Python 2
        self._path = path
        self._storages = storages

    def find_class(self, module, name):
        if (module, name) in _ALLOWED_GLOBALS:
            return _ALLOWED_GLOBALS[(module, name)]
        if module in ("torch", "torch.cuda") and name in _STORAGE_DTYPES:
            return _StorageType(name)
        raise UnsafeTorchFileError(
            f"{self._path}: refusing to unpickle global '{module}.{name}': only tensors, "
            "OrderedDicts and plain containers are allowed in a weights file. If this file "
            "holds a whole pickled model, re-save its state_dict() with PyTorch."
        )

    def persistent_load(self, pid):
        if self._storages is None:
            raise TorchFileError(f"{self._path}: unexpected persistent id {pid!r}")
        if not isinstance(pid, tuple) or not pid or pid[0] != "storage":
            kind = pid[0] if isinstance(pid, tuple) and pid else pid
            raise UnsafeTorchFileError(
                f"{self._path}: refusing persistent id of type {kind!r} (only 'storage')"
            )
        try:
            if len(pid) not in (5, 6) or not isinstance(pid[1], _StorageType):
                raise ValueError("not (storage, type, key, location, numel[, view])")
            stype, key, numel = pid[1], str(pid[2]), int(pid[4])
            view = pid[5] if len(pid) == 6 else None
            if view is not None:
                view_key, offset, view_numel = str(view[0]), int(view[1]), int(view[2])
                if offset < 0 or view_numel < 0:
                    raise ValueError("negative view")
            if numel < 0:
                raise ValueError("negative size")
        except (TypeError, ValueError, IndexError) as err:
            raise TorchFileError(f"{self._path}: malformed storage id ({err})") from None
        if key not in self._storages:
            self._storages[key] = _Storage(stype, key, numel)
        root = self._storages[key]
        if view is None:
            return root
        if view_key not in self._storages:
            sub = _Storage(stype, view_key, view_numel)
            sub.view = (root, offset)
            self._storages[view_key] = sub
        return self._storages[view_key]


def _opcode_table():
    """opcode byte -> argument length (>= 0) or how it is found (< 0, pickletools' codes;
    -6: two lines, GLOBAL / INST)."""
    table = {}
    for op in pickletools.opcodes:
        n = op.arg.n if op.arg is not None else 0
        if op.arg is not None and op.arg.name == "stringnl_noescape_pair":
            n = -6
        table[op.code.encode("latin-1")[0]] = n
    return table


_OPCODE_ARGS = _opcode_table()
_STOP = pickle.STOP[0]


def _count_ops(raw, start, path):
    """Walks the pickle at raw[start:] opcode by opcode without building anything; refuses
    more than MAX_PICKLE_OPS operations, an unknown opcode or a truncated pickle."""
    i, end = start, len(raw)
    for _ in range(MAX_PICKLE_OPS):
        if i >= end:
            raise pickle.UnpicklingError("truncated pickle")
        code = raw[i]
        n = _OPCODE_ARGS.get(code)
        i += 1
        if n is None:
            raise pickle.UnpicklingError(f"unknown opcode {code:#x}")
        if n >= 0:
            i += n
        elif n == -1:  # up to a newline
            i = raw.index(b"\n", i) + 1
        elif n == -6:  # two lines
            i = raw.index(b"\n", raw.index(b"\n", i) + 1) + 1
        elif n == -2:  # 1-byte length
            i += 1 + raw[i]
        elif n in (-3, -4):  # 4-byte length
            i += 4 + abs(int.from_bytes(raw[i : i + 4], "little", signed=n == -3))
        else:  # 8-byte length
            i += 8 + int.from_bytes(raw[i : i + 8], "little")
        if code == _STOP:
            if i > end:
                raise pickle.UnpicklingError("truncated pickle")
            return i
    raise TorchFileError(
        f"{path}: its pickle holds more than {MAX_PICKLE_OPS:,} operations, far more than a "
        "weights file needs: refused before building it"
    )


def _load_pickle(f, raw, path, storages=None):
    """Counts the pickle's operations at `f`'s position in `raw` (its bytes), refusing more
    than MAX_PICKLE_OPS before building any object, then unpickles it with the allow-list."""
    try:
        _count_ops(raw, f.tell(), path)
    except (ValueError, IndexError) as err:  # no newline left, a length past the end
        if isinstance(err, TorchFileError):
            raise
        raise pickle.UnpicklingError(f"malformed pickle ({err})") from None
    try:
        return _RestrictedUnpickler(f, path, storages).load()
    except TorchFileError as err:
        if str(err).startswith(str(path)):
            raise
        raise type(err)(f"{path}: {err}") from None
    except MemoryError:
        raise TorchFileError(f"{path}: ran out of memory unpickling it: refused") from None


def _check_graph(obj, path, budget):
    """Walks the unpickled objects once (a shared object once): refuses nesting deeper than
    MAX_DEPTH (or a cycle), more than MAX_OBJECTS objects once shared references are expanded,
    tensors past their storage, and tensors whose bytes exceed `budget`. Records each storage's
    needed extent."""
    expanded = {}
    tensors = {}
    raw_storages = {}

    def walk(o, depth):
        if depth > MAX_DEPTH:
            raise TorchFileError(
                f"{path}: objects nested more than {MAX_DEPTH} deep (or a reference cycle), "
                "which no weights file has: refused"
            )
        if isinstance(o, _LazyTensor):
            tensors[id(o)] = o
            return 1
        if isinstance(o, _Storage):
            raw_storages[id(o)] = o
            return 1
        if not isinstance(o, (dict, list, tuple)):
            return 1
        if id(o) in expanded:
            return expanded[id(o)]
        children = [x for kv in o.items() for x in kv] if isinstance(o, dict) else o
        n = 1
        for child in children:
            n += walk(child, depth + 1)
            if n > MAX_OBJECTS:
                raise TorchFileError(
                    f"{path}: its objects expand to more than {MAX_OBJECTS:,} through shared "
                    "references (a pickle bomb, not a weights file): refused"
                )
        expanded[id(o)] = n
        return n

    walk(obj, 0)
    total = 0
    for t in tensors.values():
        t.storage.require(t.extent(path), path)
        total += t.nbytes()
    for s in raw_storages.values():
        s.require(s.numel, path)
        total += s.numel * s.stype.dtype.itemsize
    if total > budget:
        raise TorchFileError(
            f"{path}: its tensors would take {total / 2**20:,.0f} MiB in memory, more than a "
            f"{budget / 2**20:,.0f} MiB budget for a file of this size (tensors repeating or "
            "broadcasting their storage): refused before reading any data"
        )


def _materialize(obj, path, done=None):
    """Tensors as numpy arrays in the same containers; a shared object is converted once."""
    done = {} if done is None else done
    if id(obj) in done:
        return done[id(obj)]
    if isinstance(obj, _LazyTensor):
        out = obj.materialize(path)
    elif isinstance(obj, _Storage):
        out = obj.array()[: obj.numel].copy()
    elif isinstance(obj, dict):
        out = obj.__class__() if isinstance(obj, collections.OrderedDict) else {}
        for k, v in obj.items():
            out[k] = _materialize(v, path, done)
    elif isinstance(obj, list):
        out = [_materialize(v, path, done) for v in obj]
    elif isinstance(obj, tuple):
        out = tuple(_materialize(v, path, done) for v in obj)
    else:
        return obj
    done[id(obj)] = out
    return out


def _read_legacy(raw, path, budget):
    f = io.BytesIO(raw)  # shares `raw`; storages below are views of it, copied when used

    def small_pickle():
        return _load_pickle(f, raw, path)

    try:
        magic = small_pickle()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as err:
        if isinstance(err, UnsafeTorchFileError):
            raise
        raise TorchFileError(
            f"{path}: not a torch.save file (neither a zip archive nor a legacy pickle): {err}"
        ) from err
    if magic != LEGACY_MAGIC:
        raise TorchFileError(f"{path}: not a torch.save file (wrong magic number {magic!r})")
    protocol = small_pickle()
    if protocol != LEGACY_PROTOCOL:
        raise TorchFileError(f"{path}: unsupported legacy protocol version {protocol!r}")
    sys_info = small_pickle()
    little = bool(sys_info.get("little_endian", True)) if isinstance(sys_info, dict) else True
    order = "<" if little else ">"

    storages = {}
    obj = _load_pickle(f, raw, path, storages)
    keys = small_pickle()
    if not isinstance(keys, list):
        raise TorchFileError(f"{path}: malformed storage key list")
    _check_graph(obj, path, budget)
    file_size = len(raw)
    for key in keys:
        key = str(key)
        storage = storages.get(key)
        if storage is None or storage.view is not None:
            raise TorchFileError(f"{path}: storage {key!r} is listed but never used")
        head = f.read(8)
        if len(head) != 8:
            raise TorchFileError(f"{path}: truncated before the data of storage {key!r}")
        (numel,) = struct.unpack(order + "q", head)
        dtype = storage.stype.dtype.newbyteorder(order)
        nbytes = numel * dtype.itemsize
        if numel < storage.needed or nbytes > file_size - f.tell():
            raise TorchFileError(
                f"{path}: storage {key!r} records {numel} elements, its tensors need "
                f"{storage.needed} and {file_size - f.tell()} bytes are left: truncated or corrupt"
            )
        storage.data = np.frombuffer(raw, dtype, count=numel, offset=f.tell())
        f.seek(nbytes, io.SEEK_CUR)
    return obj


def _read_zip(path, budget):
    with zipfile.ZipFile(path) as zf:
        names = set(zf.namelist())
        pkl = sorted((n for n in names if n.endswith("data.pkl")), key=len)
        if not pkl:
            raise TorchFileError(f"{path}: zip archive without a data.pkl: not a torch.save file")
        prefix = pkl[0][: -len("data.pkl")]
        order = "<"
        if prefix + "byteorder" in names:
            with zf.open(prefix + "byteorder") as f:
                order = "<" if f.read(16).strip() == b"little" else ">"
        info = zf.getinfo(pkl[0])
        if info.file_size > MAX_PICKLE_BYTES:
            raise TorchFileError(
                f"{path}: its {pkl[0]} declares {info.file_size / 2**20:,.0f} MiB, more than "
                f"the {MAX_PICKLE_BYTES >> 20} MiB a weights file's pickle needs: refused"
            )
        with zf.open(info) as f:
            raw = f.read(MAX_PICKLE_BYTES + 1)
        storages = {}
        obj = _load_pickle(io.BytesIO(raw), raw, path, storages)
        _check_graph(obj, path, budget)
        for storage in storages.values():
            if storage.view is not None:
                raise TorchFileError(f"{path}: storage views are not used in the zip format")
            name = f"{prefix}data/{storage.key}"
            if name not in names:
                raise TorchFileError(f"{path}: missing storage record {name!r}")
            dtype = storage.stype.dtype.newbyteorder(order)
            record = zf.getinfo(name)
            if record.file_size < storage.numel * dtype.itemsize:
                raise TorchFileError(
                    f"{path}: storage record {name!r} is truncated ({record.file_size} bytes, "
                    f"{storage.numel} x {dtype.itemsize} expected)"
                )
            # Only as far as its tensors reach: a record may declare (or inflate to) far more.
            with zf.open(record) as f:
                raw = f.read(storage.needed * dtype.itemsize)
            if len(raw) != storage.needed * dtype.itemsize:
                raise TorchFileError(f"{path}: storage record {name!r} is truncated")
            storage.data = np.frombuffer(raw, dtype)
        return obj


def read_torch_file(path):
    """Load a torch.save file's object (dicts, lists, tensors as numpy arrays), no PyTorch.

    Refuses files that would expand beyond the module's bounds (see the module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file (a PyTorch .pth / .pt weights file)")
    budget = MAX_EXPANSION * path.stat().st_size + EXPANSION_SLACK
    try:
        if zipfile.is_zipfile(path):
            obj = _read_zip(path, budget)
        else:
            obj = _read_legacy(path.read_bytes(), path, budget)
    except UnsafeTorchFileError:
        raise
    except (pickle.UnpicklingError, EOFError, zipfile.BadZipFile) as err:
        raise TorchFileError(f"{path}: corrupt or truncated torch.save file: {err}") from err
    except RecursionError:
        raise TorchFileError(f"{path}: objects nested too deep: refused") from None
    return _materialize(obj, path)


_WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "net", "network", "params")


def _is_tensor_dict(obj):
    return (
        isinstance(obj, dict)
        and len(obj) > 0
        and all(isinstance(k, str) and isinstance(v, np.ndarray) for k, v in obj.items())
    )


def state_dict_from(obj, source="the file"):
    """The ``{name: array}`` state dict in a loaded object: the object itself, or one nested
    under a common wrapper key (``state_dict``, ``model``, ...) or as the only tensor dict."""
    if _is_tensor_dict(obj):
        return dict(obj)
    if isinstance(obj, dict):
        for key in _WRAPPER_KEYS:
            if _is_tensor_dict(obj.get(key)):
                return dict(obj[key])
        nested = [k for k, v in obj.items() if _is_tensor_dict(v)]
        if len(nested) == 1:
            return dict(obj[nested[0]])
        keys = ", ".join(repr(k) for k in list(obj)[:10])
        raise TorchFileError(
            f"{source}: no state dict of tensors found (top-level keys: {keys}); expected "
            f"{{name: tensor}} or one nested under one of {', '.join(_WRAPPER_KEYS)}"
        )
    raise TorchFileError(
        f"{source}: holds a {type(obj).__name__}, not a state dict of tensors {{name: tensor}}"
    )


def load_torch_file(path):
    """Read a .pth / .pt file (legacy or zip format) into ``{name: np.ndarray}``, no PyTorch.

    Nested checkpoints (``{"state_dict": ...}``, ``{"model": ...}``) are unwrapped by
    :func:`state_dict_from`. Raises :class:`UnsafeTorchFileError` for any global outside the
    allow-list and :class:`TorchFileError` for corrupt or unsupported files.
    """
    return state_dict_from(read_torch_file(path), source=str(path))


# --- writing -----------------------------------------------------------------------------


class _Global:
    """A pickled reference to ``module.name`` (need not be importable here)."""

    def __init__(self, module, name):
        self.module, self.name = module, name


class _Call:
    """Pickles as ``func(*args)`` with ``func`` a :class:`_Global`."""

    def __init__(self, func, args):
        self.func, self.args = func, tuple(args)


class _PersistentId:
    """Pickles as a persistent id (BINPERSID) holding ``value``."""

    def __init__(self, value):
        self.value = value


def _dumps(obj):
    """Protocol-2 pickle of plain values plus :class:`_Global` / :class:`_Call` /
    :class:`_PersistentId`, written opcode by opcode so that torch's globals need not exist."""
    out = bytearray(pickle.PROTO + bytes([2]))

    def emit(x):
        if x is None:
            out.extend(pickle.NONE)
        elif isinstance(x, bool):
            out.extend(pickle.NEWTRUE if x else pickle.NEWFALSE)
        elif isinstance(x, int):
            if -(2**31) <= x < 2**31:
                out.extend(pickle.BININT + struct.pack("<i", x))
            else:
                raw = x.to_bytes((x.bit_length() + 8) // 8, "little", signed=True)
                out.extend(pickle.LONG1 + bytes([len(raw)]) + raw)
        elif isinstance(x, float):
            out.extend(pickle.BINFLOAT + struct.pack(">d", x))
        elif isinstance(x, str):
            raw = x.encode("utf-8")
            out.extend(pickle.BINUNICODE + struct.pack("<I", len(raw)) + raw)
        elif isinstance(x, tuple):
            out.extend(pickle.MARK)
            for v in x:
                emit(v)
            out.extend(pickle.TUPLE)
        elif isinstance(x, list):
            out.extend(pickle.EMPTY_LIST)
            if x:
                out.extend(pickle.MARK)
                for v in x:
                    emit(v)
                out.extend(pickle.APPENDS)
        elif isinstance(x, dict):
            if isinstance(x, collections.OrderedDict):
                emit(_Call(_Global("collections", "OrderedDict"), ()))
            else:
                out.extend(pickle.EMPTY_DICT)
            if x:
                out.extend(pickle.MARK)
                for k, v in x.items():
                    emit(k)
                    emit(v)
                out.extend(pickle.SETITEMS)
        elif isinstance(x, _Global):
            out.extend(pickle.GLOBAL + f"{x.module}\n{x.name}\n".encode("ascii"))
        elif isinstance(x, _Call):
            emit(x.func)
            emit(x.args)
            out.extend(pickle.REDUCE)
        elif isinstance(x, _PersistentId):
            emit(x.value)
            out.extend(pickle.BINPERSID)
        else:
            raise TypeError(f"cannot pickle {type(x).__name__} for a torch file")

    emit(obj)
    out.extend(pickle.STOP)
    return bytes(out)


def _tensor_call(storage_name, key, numel, offset, shape, stride):
    """``torch._utils._rebuild_tensor_v2(storage, offset, size, stride, False, OrderedDict())``."""
    pid = _PersistentId(("storage", _Global("torch", storage_name), key, "cpu", numel))
    return _Call(
        _Global("torch._utils", "_rebuild_tensor_v2"),
        (pid, offset, tuple(shape), tuple(stride), False, collections.OrderedDict()),
    )


def _aligned_extra(offset, name, alignment=64):
    """A zip extra field ('FB' padding, as PyTorch writes) that puts a record's data at a
    multiple of ``alignment`` bytes, so torch.load(mmap=True) can map it."""
    start = offset + 30 + len(name.encode("utf-8")) + 4
    pad = -start % alignment
    return struct.pack("<HH", 0x4246, pad) + b"Z" * pad


def save_torch_zip(path, tensors, archive_name="archive"):
    """Write ``{name: array}`` as a zip-format torch.save file (what ``torch.save(state_dict)``
    writes since PyTorch 1.6; ``torch.load`` reads it, weights_only included). Atomic."""
    path = Path(path)
    entries, blobs = collections.OrderedDict(), []
    for name, value in tensors.items():
        arr = np.asarray(value)
        dtype = arr.dtype.newbyteorder("=")
        if dtype not in _STORAGE_FOR_DTYPE:
            raise TypeError(
                f"save_torch_zip: tensor {name!r} has dtype {arr.dtype}, which has no torch "
                f"storage here (use one of {sorted(str(d) for d in _STORAGE_FOR_DTYPE)})"
            )
        arr = np.asarray(arr, dtype=dtype.newbyteorder("<"), order="C")  # keeps 0-d
        stride, step = [], 1
        for n in reversed(arr.shape):
            stride.insert(0, step)
            step *= n
        key = str(len(blobs))
        entries[str(name)] = _tensor_call(
            _STORAGE_FOR_DTYPE[dtype], key, arr.size, 0, arr.shape, stride
        )
        blobs.append((key, arr.tobytes()))

    records = [("data.pkl", _dumps(entries)), ("byteorder", b"little")]
    records += [(f"data/{key}", raw) for key, raw in blobs]
    records += [("version", b"3\n")]
    with atomic_path(path) as tmp, open(tmp, "wb") as f, zipfile.ZipFile(f, "w") as zf:
        for rel, raw in records:
            info = zipfile.ZipInfo(f"{archive_name}/{rel}", date_time=(1980, 1, 1, 0, 0, 0))
            info.extra = _aligned_extra(f.tell(), info.filename)
            zf.writestr(info, raw)
    return path


if __name__ == "__main__":  # quick look: python -m depth_tools.torch_file FILE.pth
    for k, v in load_torch_file(sys.argv[1]).items():
        print(f"{k}\t{v.dtype}\t{tuple(v.shape)}")
