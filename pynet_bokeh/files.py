"""Atomic file writes: a temp file in the target's folder, renamed into place when complete."""

from __future__ import annotations

import collections
import contextlib
import fnmatch
import os
import shutil
import tempfile
from pathlib import Path

from pynet_bokeh.errors import FolderNotWritableError, UsageError

TMP_PREFIX = ".tmp-"


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path, suffix=".tmp"):
    """Yields a temp path beside ``path``; on success it becomes ``path`` (ordinary file mode,
    not mkstemp's 0600), on error it is removed, so ``path`` is never left half written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f"{TMP_PREFIX}{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_bytes_atomic(path, data):
    """Writes `data` to `path` atomically (see `atomic_path`); returns the path."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text_atomic(path, text):
    """Writes `text` to `path` atomically (newlines as given); returns the path."""
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="") as f:
            f.write(text)
    return Path(path)


def check_writable(folder, what="output folder"):
    """Proves `folder` writable (or, when missing, that the nearest existing folder above it
    is, so it can be made) by creating and removing a file there: permission bits lie for
    root, ACLs and read-only mounts. Makes nothing. Raises FolderNotWritableError naming `what`
    and the folder. Returns the folder as a Path."""
    folder = Path(folder)
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    try:
        if not existing.is_dir():
            raise NotADirectoryError(20, "not a folder")
        fd, probe = tempfile.mkstemp(prefix=f"{TMP_PREFIX}write-check.", dir=existing)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        where = "" if existing == folder else f"cannot be made: {existing} "
        raise FolderNotWritableError(
            f"{what} {folder} {where}is not writable ({err.strerror or err}): fix its "
            "permissions (e.g. chmod u+w, or run as its owner) or choose another folder"
        ) from None
    return folder


def remove_stale_temporaries(folder, patterns=(f"{TMP_PREFIX}*",)):
    """Removes what a killed run of ours left in `folder`: files and folders whose names match
    `patterns` (default: `atomic_path`'s temp files). Only our own naming is touched; returns
    the paths removed. Run it before a command starts writing into `folder`."""
    folder = Path(folder)
    removed = []
    if not folder.is_dir():
        return removed
    for entry in sorted(folder.iterdir()):
        if not any(fnmatch.fnmatchcase(entry.name, p) for p in patterns):
            continue
        try:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
        except FileNotFoundError:
            continue
        removed.append(entry)
    return removed


def plan_outputs(
    inputs, output_dir, suffix, protected=(), flag="--output_dir", beside_inputs=False
):
    """[(input file, output path)] for writing one output per input into `output_dir`.

    An output is `<stem><suffix>`; inputs that share a stem (a.jpg, a.png) get
    `<name><suffix>` (a.jpg.png, a.png.png), so none is skipped or overwritten. Refuses, with
    a UsageError naming `flag`, an output folder that holds an input or is one of the
    `protected` folders or holds one of the `protected` files (depth maps, targets), and two
    inputs whose outputs would still be one file. `beside_inputs` allows an input folder
    (outputs named apart by their suffix, e.g. `_deeplens_a0.50.png`) but still refuses an
    output that is an input or a protected file.
    """
    inputs = [Path(p) for p in inputs]
    output_dir = Path(output_dir)
    target = output_dir.resolve()
    for item in [*inputs, *map(Path, protected)]:
        folder = item.resolve() if item.is_dir() else item.resolve().parent
        if folder == target and not beside_inputs:
            raise UsageError(
                f"{flag} {output_dir} is an input folder (it holds {item}): outputs there could "
                "replace inputs; choose another folder"
            )
    stems = collections.Counter(p.stem for p in inputs)
    planned, taken = [], {}
    for p in inputs:
        out = output_dir / f"{p.stem if stems[p.stem] == 1 else p.name}{suffix}"
        if out in taken:
            raise UsageError(f"{taken[out]} and {p} would both be written to {out}: rename one")
        if out.resolve() in {q.resolve() for q in [*inputs, *map(Path, protected)]}:
            raise UsageError(f"output {out} would overwrite an input: rename it or pass {flag}")
        taken[out] = p
        planned.append((p, out))
    return planned
