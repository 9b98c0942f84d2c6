"""Estimates the controls (focus disparity d_f, blur K) of a photo / bokeh pair by fitting the
classical renderer to it, so real pairs (EBB!, whose lens settings are unknown) can train the
controllable PyNET.

The fit minimises the L1 between `render.classical.render_defocus(photo, depth, d_f,
aperture)` and the target, over d_f in [0, 1] and aperture = K / max(H, W) (the same look at
any resolution, so the search runs on a copy downscaled to `fit_side` pixels), with a
coarse-to-fine grid search: a coarse grid over all of d_f and a log grid of K, then a few rounds
of finer grids around the best point.

    python -m pynet_bokeh.data.controls EBB/      # every split with bokeh/ targets

writes `<split>/original_controls/<stem>.json` beside `original/`, `original_depth/` and
`bokeh/` (atomically; pairs already done are skipped, so an interrupted run resumes). On a set
whose true controls are known (`params/<stem>.json` of `data.synthetic`) it also prints the
estimator's error in d_f and K.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from pynet_bokeh.errors import BadDataError, PynetBokehError
from pynet_bokeh.files import write_text_atomic
from pynet_bokeh.render.classical import render_defocus

__all__ = [
    "CONTROLS_DIR",
    "EstimatedControls",
    "estimate_controls",
    "estimate_dataset",
    "known_controls",
    "read_controls",
]

CONTROLS_DIR = "original_controls"
FORMAT_VERSION = 1
#: Long side, in pixels, of the copy the search renders.
FIT_SIDE = 192
#: Coarse grid: d_f over [0, 1]; aperture (K / max side) on a log scale, plus 0 (no blur).
COARSE_FOCUS = np.linspace(0.0, 1.0, 11)
COARSE_APERTURE = np.concatenate([[0.0], np.geomspace(0.002, 0.1, 9)])
REFINE_ROUNDS = 3


@dataclass(frozen=True)
class EstimatedControls:
    """A pair's fitted controls: d_f in the depth map's [0, 1], K in full-resolution pixels."""

    focus_depth01: float
    blur: float
    aperture_depth01: float
    l1: float
    l1_identity: float
    photo_size: tuple[int, int]
    fit_size: tuple[int, int]


def _downscale(image, size):
    h, w = size
    if image.shape[:2] == (h, w):
        return np.asarray(image, np.float32)
    return cv2.resize(np.asarray(image, np.float32), (w, h), interpolation=cv2.INTER_AREA)


def _fit_size(shape, fit_side):
    h, w = shape[:2]
    scale = min(1.0, fit_side / max(h, w))
    return max(int(round(h * scale)), 8), max(int(round(w * scale)), 8)


def estimate_controls(photo, depth, target, fit_side=FIT_SIDE) -> EstimatedControls:
    """Fits (d_f, K) of the classical renderer to one pair; see the module docstring.

    photo, target: H x W x 3 in [0, 1]; depth: the EBB! depth map in [0, 1] (any size with the
    photo's aspect ratio).
    """
    photo = np.asarray(photo, np.float32)
    target = np.asarray(target, np.float32)
    if photo.shape != target.shape or photo.ndim != 3:
        raise BadDataError(f"photo {photo.shape} and bokeh {target.shape} must be H x W x 3 alike")
    size = _fit_size(photo.shape, fit_side)
    small, goal = _downscale(photo, size), _downscale(target, size)
    d = np.clip(_downscale(np.squeeze(np.asarray(depth, np.float32)), size), 0.0, 1.0)
    cache = {}

    def loss(focus, aperture):
        key = (round(float(focus), 6), round(float(aperture), 7))
        if key not in cache:
            out = small if aperture <= 0 else render_defocus(small, d, focus, aperture)
            cache[key] = float(np.mean(np.abs(out - goal)))
        return cache[key]

    best = min(((f, a) for f in COARSE_FOCUS for a in COARSE_APERTURE), key=lambda fa: loss(*fa))
    f_step = float(COARSE_FOCUS[1] - COARSE_FOCUS[0])
    a_ratio = float(COARSE_APERTURE[2] / COARSE_APERTURE[1])
    for _ in range(REFINE_ROUNDS):
        f0, a0 = best
        focuses = np.clip(f0 + f_step * np.linspace(-1, 1, 5), 0.0, 1.0)
        if a0 > 0:
            apertures = a0 * a_ratio ** np.linspace(-1, 1, 5)
        else:
            apertures = np.array([0.0, COARSE_APERTURE[1] / a_ratio])
        candidates = [(f, a) for f in focuses for a in apertures] + [best]
        best = min(candidates, key=lambda fa: loss(*fa))
        f_step /= 2
        a_ratio = a_ratio**0.5
    focus, aperture = best
    h, w = photo.shape[:2]
    return EstimatedControls(
        focus_depth01=float(focus),
        blur=float(aperture * max(h, w)),
        aperture_depth01=float(aperture),
        l1=loss(focus, aperture),
        l1_identity=loss(focus, 0.0),
        photo_size=(h, w),
        fit_size=size,
    )


def controls_path(split_dir, stem) -> Path:
    """Where a pair's estimated controls live: `<split>/original_controls/<stem>.json`."""
    return Path(split_dir) / CONTROLS_DIR / f"{stem}.json"


def read_controls(path) -> tuple[float, float]:
    """(d_f, K) from an `original_controls/<stem>.json`; BadDataError naming the file if bad."""
    try:
        data = json.loads(Path(path).read_text())
        return float(data["focus_depth01"]), float(data["blur"])
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise BadDataError(
            f"{path}: not a controls file ({err}); delete it and rerun "
            "`python -m pynet_bokeh.data.controls` on the data set"
        ) from None


def known_controls(params_path) -> tuple[float, float]:
    """(d_f, K) of a synthetic sample from its `params/<stem>.json` (K in full-res pixels)."""
    try:
        p = json.loads(Path(params_path).read_text())
        # Clipped: float rounding puts the nearest layer's focus a hair above 1.
        focus = min(max(float(p["focus_depth01"]), 0.0), 1.0)
        return focus, float(p["aperture_depth01"]) * max(p["size"])
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise BadDataError(f"{params_path}: not a synthetic params file ({err})") from None


def _splits(root):
    root = Path(root)
    if not root.is_dir():
        raise BadDataError(f"{root}: no such folder; pass the data set root (EBB! layout)")
    found = [d.name for d in sorted(root.iterdir()) if (d / "bokeh").is_dir()]
    if not found:
        raise BadDataError(
            f"{root}: no split with a bokeh/ folder; expected ROOT/train/original, "
            "ROOT/train/original_depth, ROOT/train/bokeh (EBB! layout)"
        )
    return found


def estimate_dataset(root, splits=None, fit_side=FIT_SIDE, log=print):
    """Estimates and writes the controls of every pair of `splits` (default: those with
    targets) under `root`; skips pairs already done. Returns {split: [(pair, controls)]}."""
    from pynet_bokeh.data.ebb import find_pairs, validate_pairs
    from pynet_bokeh.image_io import read_depth, read_photo

    results = {}
    for split in splits or _splits(root):
        pairs = validate_pairs(find_pairs(root, split))
        split_dir = Path(root) / split
        start, last, done = time.monotonic(), 0.0, []
        for i, pair in enumerate(pairs):
            path = controls_path(split_dir, pair.stem)
            if path.exists():
                d_f, k = read_controls(path)
            else:
                est = estimate_controls(
                    read_photo(pair.photo), read_depth(pair.depth), read_photo(pair.bokeh), fit_side
                )
                record = {"format_version": FORMAT_VERSION, **asdict(est)}
                record["method"] = "classical renderer fit, L1, coarse-to-fine grid"
                write_text_atomic(path, json.dumps(record, indent=1) + "\n")
                d_f, k = est.focus_depth01, est.blur
            done.append((pair, (d_f, k)))
            now = time.monotonic()
            if now - last > 5 or i + 1 == len(pairs):
                rate = (i + 1) / max(now - start, 1e-9)
                log(
                    f"controls {split}: {i + 1}/{len(pairs)} pairs, {rate:.2f} pairs/s, "
                    f"ETA {(len(pairs) - i - 1) / rate:.0f} s"
                )
                last = now
        results[split] = done
    return results


def estimator_errors(results) -> dict | None:
    """Errors against the true controls where `params/<stem>.json` exist (synthetic sets):
    median and mean |d_f error| (depth-map units) and |K error| (pixels), the median relative K
    error, and the count. None when no pair has true controls."""
    df_err, k_err, k_rel = [], [], []
    for pairs in results.values():
        for pair, (d_f, k) in pairs:
            if pair.params is None:
                continue
            true_f, true_k = known_controls(pair.params)
            df_err.append(abs(d_f - true_f))
            k_err.append(abs(k - true_k))
            k_rel.append(abs(k - true_k) / max(true_k, 1e-6))
    if not df_err:
        return None
    return {
        "pairs": len(df_err),
        "focus_abs_error_median": float(np.median(df_err)),
        "focus_abs_error_mean": float(np.mean(df_err)),
        "blur_abs_error_px_median": float(np.median(k_err)),
        "blur_abs_error_px_mean": float(np.mean(k_err)),
        "blur_rel_error_median": float(np.median(k_rel)),
    }


def main(argv=None):
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m pynet_bokeh.data.controls",
        description="Estimate each pair's focus disparity and blur K (classical renderer fit); "
        "writes <split>/original_controls/<stem>.json.",
    )
    parser.add_argument("root", help="data set root in the EBB! layout")
    parser.add_argument("--split", action="append", help="split(s) to do (default: all)")
    parser.add_argument("--fit_side", type=int, default=FIT_SIDE, help="long side of the search")
    args = parser.parse_args(argv)
    try:
        if args.fit_side < 16:
            raise BadDataError(f"--fit_side {args.fit_side}: give at least 16 pixels")
        results = estimate_dataset(args.root, args.split, args.fit_side)
    except (PynetBokehError, FileNotFoundError, ValueError) as err:
        print(f"error: {str(err).splitlines()[0]}", file=sys.stderr)
        return 1
    errors = estimator_errors(results)
    if errors:
        print("error against the true controls (params/*.json): " + json.dumps(errors))
    return 0


if __name__ == "__main__":
    sys.exit(main())
