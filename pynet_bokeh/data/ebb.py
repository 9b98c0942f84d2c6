"""The EBB! data set layout: pairing, validation and a streaming `tf.data` pipeline.

Layout (the same under `test/`; `data.synthetic` writes it too):

    ROOT/train/original/<stem>.jpg         all-in-focus photo, H x W
    ROOT/train/original_depth/<stem>.png   depth map, 8-bit single channel, H/2 x W/2
    ROOT/train/bokeh/<stem>.jpg            the bokeh target, H x W
    ROOT/train/params/<stem>.json          optional (synthetic sets): focus and aperture

Files are paired by stem, never by listing order. `validate_pairs` decodes every file once, with
the decoders the pipeline uses, and reports every problem at once. `ebb_dataset` streams pairs
from disk: only file names are shuffled, each photo is decoded (only the window a patch needs),
downscaled x0.5 (bicubic, as `image_io.ebb_input`), stacked with its depth map, cropped together
with the matching full-resolution bokeh window, the target resized to the level's size, and the
pair rotated / flipped jointly; memory does not grow with the data set's size.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import struct
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import tensorflow as tf
from absl import logging

from pynet_bokeh.errors import BadDataError
from pynet_bokeh.files import write_text_atomic
from pynet_bokeh.image_io import half_size
from pynet_bokeh.render.controls import signed_defocus

__all__ = [
    "EbbPair",
    "EbbValidationError",
    "ebb_dataset",
    "ebb_eval_dataset",
    "find_pairs",
    "target_size",
    "validate_pairs",
    "validate_splits",
]

PHOTO_DIR, DEPTH_DIR, BOKEH_DIR, PARAMS_DIR = "original", "original_depth", "bokeh", "params"
PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png")
DEPTH_SUFFIXES = (".png",)
LAYOUT_HELP = (
    "expected the EBB! layout ROOT/{split}/original/<stem>.jpg, "
    "ROOT/{split}/original_depth/<stem>.png, ROOT/{split}/bokeh/<stem>.jpg"
)
# Full-resolution margin decoded around a photo window, so that the x0.5 bicubic downscale of
# the window equals that of the whole photo there (antialiased bicubic reaches 4 px at x0.5;
# JPEG chroma upsampling differs at a crop's edge).
_MARGIN = 8
# The accurate integer IDCT decodes bit-exactly as imageio / PIL (what `image_io` reads with);
# TF's default (fast) one differs by up to ~15 levels.
_DCT = "INTEGER_ACCURATE"


class EbbValidationError(BadDataError):
    """Some files of an EBB!-layout data set are missing or bad; `problems` lists (path, what)."""

    def __init__(self, message, problems):
        super().__init__(message)
        self.problems = problems


@dataclasses.dataclass(frozen=True)
class EbbPair:
    """One sample's files. `photo_size` (H, W) is filled in by `validate_pairs`."""

    stem: str
    photo: Path | None
    depth: Path | None
    bokeh: Path | None
    params: Path | None = None
    photo_size: tuple[int, int] | None = None
    duplicates: tuple[Path, ...] = ()


def _natural_key(stem):
    return [(0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", stem) if t]


def _index(folder, suffixes):
    """stem -> sorted list of files in `folder` with one of `suffixes` (case-insensitive)."""
    found = {}
    if folder.is_dir():
        for path in folder.iterdir():
            if path.suffix.lower() in suffixes and not path.name.startswith("."):
                found.setdefault(path.stem, []).append(path)
    return {stem: sorted(paths) for stem, paths in found.items()}


def find_pairs(root, split="train"):
    """Pairs an EBB!-layout split's files by stem; returns a list of `EbbPair`, stems sorted.

    A stem with a file in any of the folders gives a pair; a missing partner is None (checked by
    `validate_pairs`). Raises FileNotFoundError when the split holds no photos or depth maps.
    """
    split_dir = Path(root) / split
    photos = _index(split_dir / PHOTO_DIR, PHOTO_SUFFIXES)
    depths = _index(split_dir / DEPTH_DIR, DEPTH_SUFFIXES)
    bokehs = _index(split_dir / BOKEH_DIR, PHOTO_SUFFIXES)
    params = _index(split_dir / PARAMS_DIR, (".json",))
    if not photos and not depths:
        raise FileNotFoundError(
            f"{split_dir}: no photos or depth maps found; " + LAYOUT_HELP.format(split=split)
        )
    pairs = []
    for stem in sorted(set(photos) | set(depths) | set(bokehs), key=_natural_key):
        files = [photos.get(stem, []), depths.get(stem, []), bokehs.get(stem, [])]
        extra = tuple(p for group in files for p in group[1:])
        pairs.append(
            EbbPair(
                stem=stem,
                photo=files[0][0] if files[0] else None,
                depth=files[1][0] if files[1] else None,
                bokeh=files[2][0] if files[2] else None,
                params=params[stem][0] if stem in params else None,
                duplicates=extra,
            )
        )
    return pairs


# ------------------------------------------------------------------------------ validation

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_PNG_COLOUR = {0: "grayscale", 2: "RGB", 3: "palette", 4: "grayscale + alpha", 6: "RGBA"}


def _sniff(data):
    """'jpeg', 'png' or None from a file's first bytes."""
    if data[:3] == b"\xff\xd8\xff":
        return "jpeg"
    if data[:8] == _PNG_MAGIC:
        return "png"
    return None


def _png_header(data):
    """(bit depth, colour type) from a PNG's IHDR chunk, or None when it is malformed."""
    if len(data) < 33 or data[12:16] != b"IHDR":
        return None
    return data[24], data[25]


def _check_image(path, kind):
    """Decodes one file as the pipeline will; returns ((H, W) or None, problem or None)."""
    try:
        data = Path(path).read_bytes()
    except OSError as err:
        return None, f"cannot read the file ({err})"
    if not data:
        return None, "empty file (0 bytes); re-copy or regenerate it"
    fmt = _sniff(data)
    depth = kind == "depth map"
    if fmt is None or (depth and fmt != "png"):
        want = "a PNG" if depth else "a JPEG or PNG"
        return None, f"not {want} file (unrecognised content); re-copy or regenerate it"
    if fmt == "png":
        header = _png_header(data)
        if header is None:
            return None, "corrupt PNG header; re-copy or regenerate it"
        bits, colour = header
        colour_name = _PNG_COLOUR.get(colour, f"colour type {colour}")
        if depth and (bits != 8 or colour != 0):
            return None, (
                f"depth map is {bits}-bit {colour_name} PNG; EBB! depth maps are 8-bit "
                "single-channel (grayscale): convert it or regenerate it with depth-tools-generate"
            )
        if not depth and colour in (4, 6):
            return None, f"{kind} has an alpha channel ({colour_name}); save it as RGB"
        if not depth and bits != 8:
            return None, f"{kind} is a {bits}-bit PNG; save it as 8-bit"
    elif not depth:
        try:
            channels = int(tf.io.extract_jpeg_shape(data)[2])
        except tf.errors.OpError:
            channels = 3  # the decode below reports it
        if channels not in (1, 3):
            return None, f"{kind} is a {channels}-channel (CMYK?) JPEG; save it as RGB"
    try:
        if fmt == "jpeg":
            image = tf.io.decode_jpeg(data, channels=3, dct_method=_DCT)
        else:
            image = tf.io.decode_png(data, channels=1 if depth else 3)
    except tf.errors.OpError as err:
        detail = str(err).split("[Op:")[0].split("}}")[-1].strip()
        return None, f"cannot decode the {kind}: truncated or corrupt ({detail}); re-copy it"
    return (int(image.shape[0]), int(image.shape[1])), None


class _ValidationCache:
    """Sizes of files that passed, keyed by path, valid while their size and mtime are unchanged."""

    VERSION = 1

    def __init__(self, path):
        self.path = Path(path) if path else None
        self.entries = {}
        if self.path and self.path.exists():
            try:
                data = json.loads(self.path.read_text())
                if data.get("version") == self.VERSION:
                    self.entries = data["files"]
            except (OSError, ValueError, KeyError):
                self.entries = {}  # unreadable cache: validate everything again

    @staticmethod
    def _stamp(path):
        st = os.stat(path)
        return [st.st_size, st.st_mtime_ns]

    def check(self, path, kind):
        if self.path is None:
            return _check_image(path, kind)
        key = f"{kind}:{os.path.abspath(path)}"
        try:
            stamp = self._stamp(path)
        except OSError:
            return _check_image(path, kind)
        entry = self.entries.get(key)
        if entry and entry[:2] == stamp:
            return tuple(entry[2:]), None
        size, problem = _check_image(path, kind)
        if problem is None:
            self.entries[key] = stamp + list(size)
        return size, problem

    def save(self):
        if self.path is None:
            return
        write_text_atomic(self.path, json.dumps({"version": self.VERSION, "files": self.entries}))


def _check_pair(pair, require_bokeh, cache):
    """(pair with photo_size, problems [(path, what)], depth size warning or None)."""
    problems = []
    stem = pair.stem
    anchor = pair.photo or pair.depth or pair.bokeh
    split_dir = anchor.parent.parent
    for path in pair.duplicates:
        problems.append((path, f"another file has the same stem {stem!r}; keep one of them"))
    if pair.photo is None:
        problems.append((split_dir / PHOTO_DIR / f"{stem}.jpg", "missing photo for this stem"))
    if pair.depth is None:
        problems.append((split_dir / DEPTH_DIR / f"{stem}.png", "missing depth map"))
    if pair.bokeh is None and require_bokeh:
        problems.append((split_dir / BOKEH_DIR / f"{stem}.jpg", "missing bokeh target"))
    sizes = {}
    for kind, path in (("photo", pair.photo), ("depth map", pair.depth), ("bokeh", pair.bokeh)):
        if path is not None:
            sizes[kind], problem = cache.check(path, kind)
            if problem:
                problems.append((path, problem))
    photo, depth, bokeh = sizes.get("photo"), sizes.get("depth map"), sizes.get("bokeh")
    warning = None
    if photo and bokeh and photo != bokeh:
        problems.append(
            (
                pair.bokeh,
                f"bokeh is {bokeh[0]}x{bokeh[1]} (HxW) but photo {pair.photo.name} is "
                f"{photo[0]}x{photo[1]}; they must match",
            )
        )
    if photo and depth:
        want = half_size(photo)
        if depth != want:
            if abs(depth[0] - photo[0] / 2) <= 1 and abs(depth[1] - photo[1] / 2) <= 1:
                warning = f"{pair.depth}: {depth[0]}x{depth[1]}, expected {want[0]}x{want[1]}"
            else:
                problems.append(
                    (
                        pair.depth,
                        f"depth map is {depth[0]}x{depth[1]} (HxW); expected half the "
                        f"photo's size {want[0]}x{want[1]} ({pair.photo.name} is "
                        f"{photo[0]}x{photo[1]})",
                    )
                )
    return dataclasses.replace(pair, photo_size=photo), problems, warning


BAD_PAIRS_FILE = "bad_pairs.txt"


@dataclasses.dataclass
class _SplitCheck:
    """One split's validation: all its pairs, the good ones and every problem found."""

    label: str
    pairs: list
    good: list
    bad: int
    problems: list


def _check_split(pairs, require_bokeh, workers, cache, label=""):
    pairs = list(pairs)
    if not pairs:
        raise EbbValidationError(f"{label + ': ' if label else ''}no pairs to validate", [])
    workers = workers or min(8, os.cpu_count() or 1)
    start = time.monotonic()
    results = []
    with ThreadPoolExecutor(max_workers=workers) as pool:
        last_log = start
        for i, result in enumerate(pool.map(lambda p: _check_pair(p, require_bokeh, cache), pairs)):
            results.append(result)
            now = time.monotonic()
            if now - last_log > 10:
                rate = (i + 1) / (now - start)
                logging.info(
                    "validating pairs: %d/%d, %.0f pairs/s, ETA %.0f s",
                    i + 1,
                    len(pairs),
                    rate,
                    (len(pairs) - i - 1) / rate,
                )
                last_log = now
    cache.save()
    good = [pair for pair, problems, _ in results if not problems]
    bad = [problems for _, problems, _ in results if problems]
    resized = [w for pair, problems, w in results if w and not problems]
    if resized:
        shown = "; ".join(resized[:5]) + (
            f"; ... ({len(resized) - 5} more)" if len(resized) > 5 else ""
        )
        warnings.warn(
            f"{len(resized)} depth map(s) are off by rounding from half the photo's size and "
            f"will be resized: {shown}",
            stacklevel=3,
        )
    return _SplitCheck(label, pairs, good, len(bad), [p for problems in bad for p in problems])


def _report(checks, skip_bad, report):
    """Raises one EbbValidationError for the problems of every split in `checks`, or (with
    `skip_bad`) logs how many pairs are left out and writes the full list to `report`."""
    failed = [c for c in checks if c.bad]
    if not failed:
        if report is not None and os.path.exists(report):
            os.remove(report)  # an earlier run's list, no longer true
        return
    problems = [p for c in failed for p in c.problems]

    def head(c):
        return f"{c.label + ': ' if c.label else ''}{c.bad} of {len(c.pairs)} pairs"

    if skip_bad:
        if report is not None:
            lines = [f"{path}: {what}" for path, what in problems]
            write_text_atomic(report, "\n".join(lines) + "\n")
            where = f"all listed in {report}"
        else:
            where = "; ".join(f"{path}: {what}" for path, what in problems)
        for c in failed:
            logging.warning(
                "Skipping %s with bad or missing files (%d problems, %s); training on the "
                "other %d.",
                head(c),
                len(c.problems),
                where,
                len(c.good),
            )
        empty = [c for c in failed if not c.good]
        if empty:
            raise EbbValidationError(
                f"{', '.join(head(c) for c in empty)} have problems: nothing left to use ({where})",
                problems,
            )
        return
    lines = []
    for c in failed:
        lines.append(f"{head(c)} have problems:")
        lines += [f"  {path}: {what}" for path, what in c.problems]
    advice = "Fix or remove these files"
    if all(c.good for c in failed):
        others = ", ".join(
            f"{len(c.good)}" if not c.label else f"{c.label} {len(c.good)}" for c in failed
        )
        advice += f", or pass --skip_bad to use the other {others} pairs"
    raise EbbValidationError("\n".join(lines) + f"\n{advice}.", problems)


def validate_pairs(
    pairs, skip_bad=False, require_bokeh=True, workers=None, cache=None, report=None
):
    """Checks every pair once, reporting all problems together; returns the good pairs.

    Checks: a partner missing (photo, depth map, bokeh if `require_bokeh`), an empty, unreadable
    or truncated file, a depth map that is not an 8-bit single-channel PNG, an RGBA / 16-bit
    photo, photo and bokeh sizes that differ, and a depth map that is not half the photo's size
    (off by rounding: kept, resized with a warning). Raises `EbbValidationError` listing each
    bad path and its problem, unless `skip_bad`, which logs how many were left out and writes
    every problem to `report` (a file, e.g. in the run folder; else they are logged).

    cache: optional JSON file (e.g. in the model folder) remembering the files that passed, by
    path, size and modification time, so that a rerun (resuming training) does not decode the
    whole data set again; a changed file is checked again.
    """
    check = _check_split(pairs, require_bokeh, workers, _ValidationCache(cache))
    _report([check], skip_bad, report)
    return check.good


def validate_splits(
    root,
    splits=("train", "test"),
    optional=("test",),
    skip_bad=False,
    require_bokeh=True,
    workers=None,
    cache=None,
    report=None,
):
    """`validate_pairs` for several splits of `root` at once: the problems of every split are
    reported together. Splits in `optional` are left out when their folder is missing.
    Returns {split: good pairs}."""
    cache = _ValidationCache(cache)
    checks = [
        _check_split(find_pairs(root, split), require_bokeh, workers, cache, label=split)
        for split in splits
        if split not in optional or (Path(root) / split).is_dir()
    ]
    _report(checks, skip_bad, report)
    return {c.label: c.good for c in checks}


def _file_size(path):
    """(H, W) from an image file's header (JPEG or PNG)."""
    data = Path(path).read_bytes()
    if _sniff(data) == "png":
        return struct.unpack(">II", data[16:24])[::-1]
    shape = tf.io.extract_jpeg_shape(data)
    return int(shape[0]), int(shape[1])


# ---------------------------------------------------------------------------------- tf.data


def target_size(patch_size, level):
    """Target side for an input patch side and a PyNET level: 2 * patch / 2**(level - 1)."""
    return 2 * patch_size // 2 ** (level - 1)


def _check_level_patch(level, patch_size):
    if level not in range(1, 8):
        raise ValueError(f"level must be 1..7, got {level}")
    if patch_size <= 0 or patch_size % 32:
        raise ValueError(
            f"patch_size must be a positive multiple of 32 (PyNET downsamples by 32), "
            f"got {patch_size}"
        )


def _is_jpeg(path):
    with open(path, "rb") as f:
        return _sniff(f.read(8)) == "jpeg"


def _pair_tensors(pairs, controls=None, k_max=None):
    """Columns of per-pair constants for `Dataset.from_tensor_slices`; with `controls` (one
    (d_f, K) per pair) and `k_max`, also the controls that make the 5th input channel."""
    for pair in pairs:
        if pair.photo is None or pair.depth is None or pair.bokeh is None:
            raise ValueError(f"pair {pair.stem!r} lacks a file; validate the pairs first")
    sizes = [pair.photo_size or _file_size(pair.photo) for pair in pairs]
    columns = {}
    if controls is not None:
        controls = np.asarray(controls, np.float32).reshape(-1, 2)
        if len(controls) != len(pairs) or not k_max:
            raise ValueError("controls needs one (d_f, K) per pair and k_max > 0")
        columns["controls"] = controls / np.array([1.0, k_max], np.float32)
    return columns | {
        "photo": [str(p.photo) for p in pairs],
        "depth": [str(p.depth) for p in pairs],
        "bokeh": [str(p.bokeh) for p in pairs],
        "photo_jpeg": [_is_jpeg(p.photo) for p in pairs],
        "bokeh_jpeg": [_is_jpeg(p.bokeh) for p in pairs],
        "size": np.asarray(sizes, np.int32).reshape(-1, 2),
    }


def _decode_window(path, is_jpeg, full_h, full_w, y0, x0, h, w):
    """Rows y0:y0+h, cols x0:x0+w of an image file as float32 in [0, 1] (window in bounds)."""
    contents = tf.io.read_file(path)

    def jpeg():
        return tf.io.decode_and_crop_jpeg(
            contents, tf.stack([y0, x0, h, w]), channels=3, dct_method=_DCT
        )

    def other():
        image = tf.io.decode_image(contents, channels=3, expand_animations=False)
        return image[y0 : y0 + h, x0 : x0 + w]

    image = tf.cond(is_jpeg, jpeg, other)
    return tf.image.convert_image_dtype(image, tf.float32)


def _decode_crop(path, is_jpeg, full_h, full_w, y0, x0, h, w):
    """Like `_decode_window`, decoding a margin around the window (JPEG edges differ)."""
    ys, xs = tf.maximum(y0 - _MARGIN, 0), tf.maximum(x0 - _MARGIN, 0)
    ye, xe = tf.minimum(y0 + h + _MARGIN, full_h), tf.minimum(x0 + w + _MARGIN, full_w)
    region = _decode_window(path, is_jpeg, full_h, full_w, ys, xs, ye - ys, xe - xs)
    return region[y0 - ys : y0 - ys + h, x0 - xs : x0 - xs + w]


def _resize(image, size):
    """Bicubic, antialiased, clipped: `image_io.resize_bicubic` in graph form (no-op at the
    same size)."""
    return tf.cond(
        tf.reduce_all(tf.shape(image)[:2] == size),
        lambda: image,
        lambda: tf.clip_by_value(
            tf.image.resize(image, size, method="bicubic", antialias=True), 0.0, 1.0
        ),
    )


def _load_patch(element, y, x, ph, pw, target_hw):
    """Input window (ph x pw x 4 at half resolution, offset y, x) and its target."""
    full_h, full_w = element["size"][0], element["size"][1]
    in_h = tf.cast(tf.round(tf.cast(full_h, tf.float32) / 2), tf.int32)
    in_w = tf.cast(tf.round(tf.cast(full_w, tf.float32) / 2), tf.int32)
    even = tf.logical_and(full_h == 2 * in_h, full_w == 2 * in_w)

    def photo_window():
        # Decode only the full-resolution window (+ margin) and downscale it: equal to
        # downscaling the whole photo, then cropping, since the scale is exactly 0.5.
        ys, xs = tf.maximum(2 * y - _MARGIN, 0), tf.maximum(2 * x - _MARGIN, 0)
        ye = tf.minimum(2 * (y + ph) + _MARGIN, full_h)
        xe = tf.minimum(2 * (x + pw) + _MARGIN, full_w)
        region = _decode_window(
            element["photo"], element["photo_jpeg"], full_h, full_w, ys, xs, ye - ys, xe - xs
        )
        small = _resize(region, tf.stack([(ye - ys) // 2, (xe - xs) // 2]))
        oy, ox = (2 * y - ys) // 2, (2 * x - xs) // 2
        return small[oy : oy + ph, ox : ox + pw]

    def photo_whole():  # odd sizes: the scale is not exactly 0.5
        image = _decode_window(
            element["photo"], element["photo_jpeg"], full_h, full_w, 0, 0, full_h, full_w
        )
        return _resize(image, tf.stack([in_h, in_w]))[y : y + ph, x : x + pw]

    photo = tf.cond(even, photo_window, photo_whole)
    depth = tf.image.convert_image_dtype(
        tf.io.decode_png(tf.io.read_file(element["depth"]), channels=1), tf.float32
    )
    depth = _resize(depth, tf.stack([in_h, in_w]))
    depth = depth[y : y + ph, x : x + pw]
    channels = [photo, depth]
    if "controls" in element:  # K is stored over K_max already
        channels.append(signed_defocus(depth, element["controls"][0], element["controls"][1], 1.0))
    inputs = tf.concat(channels, axis=-1)
    target = _decode_crop(
        element["bokeh"],
        element["bokeh_jpeg"],
        full_h,
        full_w,
        2 * y,
        2 * x,
        tf.minimum(2 * ph, full_h - 2 * y),
        tf.minimum(2 * pw, full_w - 2 * x),
    )
    target = _resize(target, target_hw)  # a no-op copy at level 1
    return inputs, target


def ebb_dataset(
    root,
    split="train",
    level=1,
    patch_size=512,
    batch_size=1,
    shuffle=True,
    augment=True,
    seed=None,
    skip_bad=False,
    repeat=True,
    pairs=None,
    skip_batches=0,
    shard=None,
    controls=None,
    k_max=None,
):
    """Streaming training pipeline: (input N x p x p x 4, target N x t x t x 3), float32 [0, 1].

    With `controls` (one (d_f, K) per pair, K in full-resolution pixels) and `k_max`, the input
    has a 5th channel, the signed defocus map of the controllable PyNET.
    p = patch_size (half-resolution input patch, a multiple of 32); t = target_size(p, level) =
    2p / 2**(level - 1). The target is the full-resolution bokeh window matching the input
    patch (2p x 2p), resized bicubically to t x t. `pairs` (from `validate_pairs`) skips the
    search and validation of `root` / `split`. `seed` makes the order, crops and augmentation
    reproducible; `skip_batches` skips that many batches cheaply (file names, not images) to
    resume at a data position. Batches are full (the remainder is dropped).

    shard: (index, count) for one of `count` workers: batches of batch_size / count samples,
    part `index` of each batch the unsharded pipeline yields (the same samples, crops and
    augmentation), and only that part is read from disk.
    """
    _check_level_patch(level, patch_size)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    index, count = shard if shard is not None else (0, 1)
    if count < 1 or not 0 <= index < count or batch_size % count:
        raise ValueError(
            f"shard {index}/{count}: need 0 <= index < count and a batch_size ({batch_size}) "
            "that count divides"
        )
    if pairs is None:
        pairs = validate_pairs(find_pairs(root, split), skip_bad=skip_bad)
    pairs = list(pairs)
    if not pairs:
        raise ValueError(f"no pairs to load from {Path(root) / split}")
    columns = _pair_tensors(pairs, controls, k_max)
    channels = 5 if controls is not None else 4
    for pair, (h, w) in zip(pairs, columns["size"], strict=True):
        in_h, in_w = half_size((int(h), int(w)))
        if min(in_h, in_w) < patch_size:
            raise ValueError(
                f"{pair.photo}: {h}x{w} gives a {in_h}x{in_w} input, smaller than "
                f"patch_size {patch_size}; use a smaller --patch_size"
            )
    t = target_size(patch_size, level)
    p = tf.constant(patch_size, tf.int32)

    files = tf.data.Dataset.from_tensor_slices(columns)
    if shuffle:
        files = files.shuffle(min(len(pairs), 100_000), seed=seed, reshuffle_each_iteration=True)
    if repeat:
        files = files.repeat()
    # One random number per element, drawn in order, so crops do not depend on thread timing.
    ds = tf.data.Dataset.zip(files, tf.data.Dataset.random(seed=seed))
    if skip_batches:
        ds = ds.skip(int(skip_batches) * batch_size)
    if count > 1:
        # Keep this worker's contiguous part of every batch, before anything is decoded.
        part = batch_size // count
        ds = ds.enumerate().filter(lambda i, e: (i % batch_size) // part == index)
        ds = ds.map(lambda i, e: e)
        batch_size = part

    @tf.autograph.experimental.do_not_convert
    def load(element, rand):
        full_h, full_w = element["size"][0], element["size"][1]
        in_h = tf.cast(tf.round(tf.cast(full_h, tf.float32) / 2), tf.int32)
        in_w = tf.cast(tf.round(tf.cast(full_w, tf.float32) / 2), tf.int32)
        rand = tf.cast(rand % (2**31 - 1), tf.int32)
        y = tf.random.stateless_uniform([], [rand, 1], 0, in_h - p + 1, tf.int32)
        x = tf.random.stateless_uniform([], [rand, 2], 0, in_w - p + 1, tf.int32)
        inputs, target = _load_patch(element, y, x, p, p, tf.stack([t, t]))
        if augment:
            k = tf.random.stateless_uniform([], [rand, 3], 0, 4, tf.int32)
            flip = tf.random.stateless_uniform([], [rand, 4]) < 0.5
            inputs, target = tf.image.rot90(inputs, k), tf.image.rot90(target, k)
            inputs = tf.cond(flip, lambda: tf.image.flip_left_right(inputs), lambda: inputs)
            target = tf.cond(flip, lambda: tf.image.flip_left_right(target), lambda: target)
        inputs = tf.ensure_shape(inputs, [patch_size, patch_size, channels])
        target = tf.ensure_shape(target, [t, t, 3])
        return inputs, target

    ds = ds.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=seed is not None)
    ds = ds.batch(batch_size, drop_remainder=True)
    return ds.prefetch(tf.data.AUTOTUNE)


def ebb_eval_dataset(
    root,
    split="test",
    level=1,
    pairs=None,
    skip_bad=False,
    multiple=32,
    controls=None,
    k_max=None,
):
    """Whole images, in stem order: (input 1 x h x w x 4, target 1 x th x tw x 3), float32.

    The half-resolution input is cropped at the bottom / right to a multiple of `multiple` (so
    every PyNET level has an exact size) and the target is the matching full-resolution bokeh
    region resized to the level's size (2h / 2**(level - 1)). For metrics on the uncropped
    photo use `pynet_bokeh.inference.render_bokeh` instead.
    """
    if level not in range(1, 8):
        raise ValueError(f"level must be 1..7, got {level}")
    if pairs is None:
        pairs = validate_pairs(find_pairs(root, split), skip_bad=skip_bad)
    pairs = list(pairs)
    columns = _pair_tensors(pairs, controls, k_max)
    for pair, (h, w) in zip(pairs, columns["size"], strict=True):
        if min(half_size((int(h), int(w)))) < multiple:
            raise ValueError(f"{pair.photo}: {h}x{w} is too small for a {multiple}-px input")
    scale = 2 ** (level - 1)

    @tf.autograph.experimental.do_not_convert
    def load(element):
        full_h, full_w = element["size"][0], element["size"][1]
        in_h = tf.cast(tf.round(tf.cast(full_h, tf.float32) / 2), tf.int32)
        in_w = tf.cast(tf.round(tf.cast(full_w, tf.float32) / 2), tf.int32)
        ph, pw = in_h - in_h % multiple, in_w - in_w % multiple
        inputs, target = _load_patch(element, 0, 0, ph, pw, tf.stack([2 * ph, 2 * pw]) // scale)
        return inputs[None], target[None]

    ds = tf.data.Dataset.from_tensor_slices(columns)
    return ds.map(load, num_parallel_calls=tf.data.AUTOTUNE).prefetch(1)
