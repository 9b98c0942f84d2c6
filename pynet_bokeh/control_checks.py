"""Does a method follow its focus and blur controls? Checks on a set with known controls.

On a synthetic test split (`params/<stem>.json`: the true d_f and K of each target) a renderer
is scored three ways, every image first area-downscaled by `downscale` (a PyNET level L < 1
renders at 1 / 2**(L - 1) of the photo, so its outputs are compared at that size):

- PSNR / SSIM against the target, per blur bucket (K in full-resolution pixels);
- refocus: the sharpness (Laplacian variance) of the region at the chosen focus over that of
  the far-from-focus region, divided by the same ratio on the all-in-focus photo, so texture
  differences between the regions cancel: 1 = no selective blur, > 1 = the chosen focus is the
  sharpest part, as it should be (the target's own value is the reference);
- monotonic blur: with the focus fixed, K swept over `sweep`; the out-of-focus detail (that
  region's Laplacian variance over the photo's) must not grow as K grows (1 % tolerance).

A method that takes no controls (the uncontrolled PyNET) renders its own look once per image;
its refocus gain is still measured at the sample's focus, and its sweep is "n/a".
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from pynet_bokeh import metrics
from pynet_bokeh.errors import BadDataError

__all__ = [
    "BLUR_BUCKETS",
    "SWEEP",
    "control_report",
    "format_table",
    "laplacian_variance",
    "monotonic",
    "refocus_gain",
]

#: Bucket edges of K (full-resolution pixels) for PSNR / SSIM.
BLUR_BUCKETS = (0.0, 10.0, 20.0, 40.0, math.inf)
#: K values (full-resolution pixels) of the monotonic-blur sweep.
SWEEP = (0.0, 8.0, 16.0, 32.0, 48.0)
#: |d - d_f| below which a pixel is "at the focus", above which "far from it" (depth units).
IN_FOCUS_BAND = 0.03
OUT_OF_FOCUS_BAND = 0.2
#: Fewest pixels a region needs (after erosion) to be measured.
MIN_PIXELS = 16
MONOTONIC_TOLERANCE = 0.01


def laplacian_variance(image, mask):
    """Variance of the 3 x 3 Laplacian of the image's luminance over `mask` (eroded by one
    pixel, so the filter never straddles the region's edge); NaN if too few pixels remain."""
    image = np.asarray(image, np.float32)
    grey = image @ np.array([0.299, 0.587, 0.114], np.float32) if image.ndim == 3 else image
    lap = cv2.Laplacian(grey, cv2.CV_32F, ksize=1)
    inner = cv2.erode(mask.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    inner[0, :] = inner[-1, :] = inner[:, 0] = inner[:, -1] = False
    if inner.sum() < MIN_PIXELS:
        return math.nan
    return float(lap[inner].var())


def _regions(depth, focus_disparity):
    distance = np.abs(depth - focus_disparity)
    return distance < IN_FOCUS_BAND, distance > OUT_OF_FOCUS_BAND


def refocus_gain(image, photo, depth, focus_disparity):
    """Sharpness of the in-focus region over the out-of-focus one, relative to the photo's."""
    near, far = _regions(depth, focus_disparity)
    out = laplacian_variance(image, near) / max(laplacian_variance(image, far), 1e-12)
    ref = laplacian_variance(photo, near) / max(laplacian_variance(photo, far), 1e-12)
    return out / ref if ref > 0 else math.nan


def out_of_focus_detail(image, photo, depth, focus_disparity):
    """The far-from-focus region's Laplacian variance over the photo's there (1 = untouched)."""
    _, far = _regions(depth, focus_disparity)
    return laplacian_variance(image, far) / max(laplacian_variance(photo, far), 1e-12)


def monotonic(details, tolerance=MONOTONIC_TOLERANCE):
    """Whether a sequence of detail values never grows by more than `tolerance` (relative)."""
    return all(b <= a * (1 + tolerance) + 1e-9 for a, b in zip(details, details[1:], strict=False))


@dataclass
class _Sample:
    stem: str
    photo: np.ndarray
    depth: np.ndarray  # the EBB! map, as given to the renderers
    target: np.ndarray
    focus: float
    blur: float


def _samples(root, split, limit):
    from pynet_bokeh.data.controls import known_controls
    from pynet_bokeh.data.ebb import find_pairs
    from pynet_bokeh.image_io import read_depth, read_photo

    pairs = [p for p in find_pairs(root, split) if p.bokeh is not None]
    missing = [p.stem for p in pairs if p.params is None]
    if missing or not pairs:
        raise BadDataError(
            f"{root}/{split}: the control checks need a synthetic set with known controls "
            f"(params/<stem>.json); {len(missing) or 'no'} pair(s) lack them"
        )
    for pair in pairs[:limit] if limit else pairs:
        focus, blur = known_controls(pair.params)
        yield _Sample(
            pair.stem,
            read_photo(pair.photo),
            read_depth(pair.depth),
            read_photo(pair.bokeh),
            focus,
            blur,
        )


def _small(image, downscale):
    if downscale == 1:
        return np.asarray(image, np.float32)
    h, w = image.shape[:2]
    size = (max(w // downscale, 1), max(h // downscale, 1))
    return cv2.resize(np.asarray(image, np.float32), size, interpolation=cv2.INTER_AREA)


def _ssim(out, target):
    """SSIM, or NaN where the compared size is below SSIM's 11-px window (level 6 and 7 of a
    small photo): PSNR and the control checks still apply there."""
    if min(out.shape[:2]) < metrics.SSIM_FILTER_SIZE:
        return math.nan
    return float(metrics.ssim(out, target)[0])


def _bucket(blur, edges):
    for lo, hi in zip(edges, edges[1:], strict=False):
        if lo <= blur < hi:
            return f"{lo:g}-{hi:g}" if math.isfinite(hi) else f">={lo:g}"
    return "other"


def _render(renderer, sample, focus, blur):
    if renderer.takes_focus and renderer.takes_blur:
        return renderer.render(sample.photo, sample.depth, focus_disparity=focus, blur=blur)
    depth = sample.depth if renderer.needs_depth else None
    return renderer.render(sample.photo, depth)


def control_report(renderers, root, split="test", downscale=1, limit=None, sweep=SWEEP):
    """{method label: {"buckets": {bucket: {count, psnr, ssim}}, "refocus": {...},
    "monotonic": {...} or None}} for `renderers` ({label: Renderer}), plus the target's refocus
    gain under the key "target"; see the module docstring."""
    rows = {label: {"buckets": {}, "refocus": [], "sweeps": []} for label in renderers}
    target_gains = []
    for sample in _samples(root, split, limit):
        photo = _small(sample.photo, downscale)
        target = _small(sample.target, downscale)
        depth = cv2.resize(sample.depth, photo.shape[1::-1], interpolation=cv2.INTER_NEAREST)
        target_gains.append(refocus_gain(target, photo, depth, sample.focus))
        bucket = _bucket(sample.blur, BLUR_BUCKETS)
        for label, renderer in renderers.items():
            out = np.clip(
                _small(_render(renderer, sample, sample.focus, sample.blur), downscale), 0, 1
            )
            scores = rows[label]["buckets"].setdefault(bucket, [])
            scores.append((float(metrics.psnr(out, target)[0]), _ssim(out, target)))
            rows[label]["refocus"].append(refocus_gain(out, photo, depth, sample.focus))
            if renderer.takes_blur:
                details = [
                    out_of_focus_detail(
                        _small(_render(renderer, sample, sample.focus, k), downscale),
                        photo,
                        depth,
                        sample.focus,
                    )
                    for k in sweep
                ]
                if all(math.isfinite(d) for d in details):
                    rows[label]["sweeps"].append(details)
    report = {"target": {"refocus": _gain_summary(target_gains)}}
    for label, row in rows.items():
        sweeps = row["sweeps"]
        report[label] = {
            "buckets": {
                b: {
                    "count": len(s),
                    "psnr": float(np.mean([p for p, _ in s])),
                    "ssim": float(np.mean([q for _, q in s])),
                }
                for b, s in sorted(row["buckets"].items())
            },
            "refocus": _gain_summary(row["refocus"]),
            "monotonic": None
            if not renderers[label].takes_blur
            else {
                "count": len(sweeps),
                "fraction": float(np.mean([monotonic(d) for d in sweeps])) if sweeps else math.nan,
                "sweep": list(sweep),
                "mean_detail": np.mean(sweeps, axis=0).tolist() if sweeps else [],
            },
        }
    return report


def _gain_summary(gains):
    gains = [g for g in gains if math.isfinite(g)]
    if not gains:
        return {"count": 0, "median": math.nan, "fraction_above_1": math.nan}
    return {
        "count": len(gains),
        "median": float(np.median(gains)),
        "fraction_above_1": float(np.mean(np.asarray(gains) > 1.0)),
    }


def format_table(report) -> str:
    """The report as a Markdown table: one row per method."""
    buckets = sorted({b for m in report.values() for b in m.get("buckets", {})})
    head = ["method"] + [f"PSNR/SSIM K {b}" for b in buckets]
    head += ["refocus gain (median)", "refocus > 1", "monotonic blur", "detail over sweep"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label, m in report.items():
        cells = [label]
        for b in buckets:
            s = m.get("buckets", {}).get(b)
            cells.append(f"{s['psnr']:.2f} / {s['ssim']:.3f} (n={s['count']})" if s else "")
        r = m["refocus"]
        cells += [f"{r['median']:.2f}", f"{r['fraction_above_1']:.0%} of {r['count']}"]
        mono = m.get("monotonic")
        if mono is None:
            cells += ["n/a (fixed look)" if "buckets" in m else "", ""]
        else:
            cells += [
                f"{mono['fraction']:.0%} of {mono['count']}",
                " > ".join(f"{d:.2f}" for d in mono["mean_detail"]),
            ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def renderers_from_specs(specs, level=1):
    """{label: Renderer} from `name` or `name=WEIGHTS` entries (registry methods); `level` goes
    to the methods that take one (PyNET's)."""
    import inspect

    from pynet_bokeh.renderers import renderer_class

    renderers = {}
    for spec in specs:
        name, _, weights = str(spec).partition("=")
        cls = renderer_class(name.strip())
        options = {}
        if "level" in inspect.signature(cls.__init__).parameters:
            options["level"] = level
        if cls.needs_weights and not weights:
            raise BadDataError(f"--control_methods {spec}: {name} needs weights, as {name}=PATH")
        renderer = cls(weights or None, **options)
        renderers[renderer.label] = renderer
    return renderers


def write_report(report, out_dir, source=""):
    """`control_checks.json` and `control_checks.md` (the table and how to read it) in
    `out_dir`, written atomically; returns the Markdown path."""
    import json
    import os

    from pynet_bokeh.files import write_text_atomic

    os.makedirs(out_dir, exist_ok=True)
    write_text_atomic(
        os.path.join(out_dir, "control_checks.json"), json.dumps(report, indent=1) + "\n"
    )
    path = os.path.join(out_dir, "control_checks.md")
    text = (
        f"# Control checks{f' on {source}' if source else ''}\n\n{format_table(report)}\n\n"
        "Refocus gain: Laplacian-variance ratio of the in-focus region over the far one, "
        "relative to the photo's (1 = no selective blur; the target row is the reference). "
        "Monotonic blur: share of images whose out-of-focus detail never grows along the K "
        f"sweep {list(SWEEP)} px (the last column: mean detail, 1 = the photo's).\n"
    )
    write_text_atomic(path, text)
    return path
