"""Synthetic bokeh scenes written in the EBB! layout, so every pipeline runs with no download.

A scene is a textured background (a receding plane: disparity falls from bottom to top) with
small bright highlights on it, and several textured foreground shapes at different depths in
front. Everything is built in linear light; the highlights are brighter than white (as real
light sources are), so the sharp photo clips them while the defocused target spreads them into
bright discs. The target is rendered by `pynet_bokeh.render.classical.render_layers` from the
scene's own layers, so the background hidden behind a shape is known and blurs in correctly.

Files, for each split (`train`, `test`) and sample stem (`<scene>` or `<scene>_<variant>`):

    original/<stem>.jpg        all-in-focus photo, H x W
    original_depth/<stem>.png  EBB! depth map: H/2 x W/2, 8-bit, min-max normalised disparity,
                               near = bright
    bokeh/<stem>.jpg           the defocused target, H x W
    depth_true/<stem>.npy      the true disparity, float32 H x W
    params/<stem>.json         focus and aperture (see `render.classical` for their units),
                               in true disparity and in the 8-bit map's [0, 1] units

`variants=K` renders K focus / aperture draws of each scene (same photo and depth, stems
`<scene>_0` .. `<scene>_<K-1>`). Each sample depends only on (seed, split, scene), so a set is
the same whatever order or how many runs wrote it; files are written atomically and finished
samples are skipped on a rerun (the JSON is written last). `synthetic.json` in the output folder
records the parameters, `.complete` marks a finished set.

    python -m pynet_bokeh.data.synthetic --out DIR --train N --test M --size HxW --seed S
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import cv2
import numpy as np
from absl import logging

from pynet_bokeh.files import write_bytes_atomic
from pynet_bokeh.image_io import write_image
from pynet_bokeh.render.classical import SceneLayer, linear_to_srgb, render_layers, srgb_to_linear

__all__ = [
    "ensure_synthetic",
    "generate_dataset",
    "make_scene",
    "render_sample",
    "scene_photo_and_depth",
]

SPLITS = ("train", "test")
COMPLETE_MARKER = ".complete"
PARAMS_FILE = "synthetic.json"
FORMAT_VERSION = 1
DEFAULT_APERTURE = (0.008, 0.025)


# ----------------------------------------------------------------------------------- scenes


def _noise(rng, h, w, cell):
    """Smooth value noise in [0, 1] with features about `cell` pixels wide."""
    gh, gw = h // cell + 3, w // cell + 3
    grid = rng.random((gh, gw), dtype=np.float32)
    big = cv2.resize(grid, (gw * cell, gh * cell), interpolation=cv2.INTER_CUBIC)
    y0, x0 = rng.integers(0, cell, size=2)
    return np.clip(big[y0 : y0 + h, x0 : x0 + w], 0.0, 1.0)


def _texture(rng, h, w):
    """A random linear-light texture: two colours mixed by multi-scale noise, plus a pattern."""
    scale = max(h, w)
    t = 0.0
    weights = (0.5, 0.3, 0.2)
    for weight, frac in zip(weights, (0.15, 0.04, 0.01), strict=True):
        t = t + weight * _noise(rng, h, w, max(int(scale * frac), 2))
    t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    colours = srgb_to_linear(rng.uniform(0.05, 0.95, size=(2, 3)).astype(np.float32))
    rgb = colours[0] * (1.0 - t[..., None]) + colours[1] * t[..., None]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    kind = rng.integers(0, 3)
    period = rng.uniform(0.01, 0.05) * scale
    if kind == 0:  # stripes at a random angle
        theta = rng.uniform(0, np.pi)
        u = xx * np.cos(theta) + yy * np.sin(theta)
        pattern = 0.5 + 0.5 * np.sin(2 * np.pi * u / period)
    elif kind == 1:  # checkerboard
        pattern = ((xx // period + yy // period) % 2).astype(np.float32)
    else:  # fine speckle
        pattern = _noise(rng, h, w, 2)
    strength = rng.uniform(0.2, 0.5)
    rgb = rgb * (1.0 - strength + strength * pattern[..., None])
    return rgb.astype(np.float32)


def _shape_alpha(rng, h, w):
    """An anti-aliased random shape (ellipse, rotated rectangle or polygon) as H x W alpha."""
    shift = 4  # sub-pixel vertex precision for OpenCV's drawing functions
    one = 1 << shift
    mask = np.zeros((h, w), np.uint8)
    side = min(h, w)
    cy, cx = rng.uniform(0.15, 0.85) * h, rng.uniform(0.15, 0.85) * w
    size = rng.uniform(0.12, 0.35) * side
    kind = rng.integers(0, 3)
    if kind == 0:
        axes = (int(size * one), int(size * rng.uniform(0.5, 1.0) * one))
        angle = float(rng.uniform(0, 180))
        cv2.ellipse(
            mask, (int(cx * one), int(cy * one)), axes, angle, 0, 360, 255, -1, cv2.LINE_AA, shift
        )
    else:
        if kind == 1:
            box = ((cx, cy), (size * 2, size * rng.uniform(0.6, 2.0)), rng.uniform(0, 90))
            pts = cv2.boxPoints(box)
        else:
            n = rng.integers(5, 9)
            ang = np.sort(rng.uniform(0, 2 * np.pi, n))
            rad = size * rng.uniform(0.6, 1.0, n)
            pts = np.stack([cx + rad * np.cos(ang), cy + rad * np.sin(ang)], axis=1)
        pts = np.round(pts * one).astype(np.int32)
        cv2.fillPoly(mask, [pts], 255, cv2.LINE_AA, shift)
    return mask.astype(np.float32) / 255.0


def _highlights(rng, h, w, rgb):
    """Adds small light sources brighter than white to a linear texture, in place."""
    side = min(h, w)
    n = int(rng.integers(8, 30))
    # Clustered, like street lights or sun through leaves, mostly in the upper (far) part.
    centres = rng.uniform((0, 0), (0.6 * h, w), size=(3, 2))
    for _ in range(n):
        c = centres[rng.integers(0, len(centres))] + rng.normal(0, 0.08 * side, 2)
        r = max(side * rng.uniform(0.003, 0.008), 0.7)
        colour = srgb_to_linear(rng.uniform(0.7, 1.0, 3).astype(np.float32)) * rng.uniform(3, 12)
        yy, xx = np.ogrid[0:h, 0:w]
        alpha = np.clip(r + 0.5 - np.hypot(yy - c[0], xx - c[1]), 0.0, 1.0)[..., None]
        rgb *= 1.0 - alpha
        rgb += alpha * colour
    return rgb


def make_scene(rng, size):
    """Random layered scene: list of `SceneLayer`, background first, shapes far to near."""
    h, w = size
    background = _highlights(rng, h, w, _texture(rng, h, w))
    far, near = sorted(rng.uniform(0.0, 0.3, 2))
    # A receding plane: far at the top, nearer at the bottom.
    ramp = np.linspace(far, near, h, dtype=np.float32)[:, None]
    layers = [SceneLayer(background, np.ones((h, w), np.float32), np.repeat(ramp, w, axis=1))]
    n_shapes = int(rng.integers(2, 6))
    for disparity in np.sort(rng.uniform(0.35, 1.0, n_shapes)):
        layers.append(SceneLayer(_texture(rng, h, w), _shape_alpha(rng, h, w), float(disparity)))
    return layers


def visible_disparity(layers):
    """Disparity of the front-most layer covering each pixel (coverage >= 0.5)."""
    h, w = layers[0].alpha.shape
    disp = np.zeros((h, w), np.float32)
    for layer in layers:
        d = np.broadcast_to(np.asarray(layer.disparity, np.float32), (h, w))
        disp = np.where(layer.alpha >= 0.5, d, disp)
    return disp


def ebb_depth_map(disparity):
    """EBB! depth encoding: half size, min-max normalised to [0, 1] (near = bright).

    Returns (depth01, dmin, dmax); depth01 is quantised to 8 bits (k / 255).
    """
    h, w = disparity.shape
    half = cv2.resize(disparity, (w // 2, h // 2), interpolation=cv2.INTER_AREA)
    dmin, dmax = float(half.min()), float(half.max())
    depth01 = (half - dmin) / max(dmax - dmin, 1e-6)
    return np.round(depth01 * 255.0) / 255.0, dmin, dmax


def render_sample(layers, focus_disparity, aperture):
    """(photo, bokeh): sRGB float32 H x W x 3 in [0, 1] for a scene and lens setting."""
    photo = linear_to_srgb(render_layers(layers, focus_disparity, 0.0))
    bokeh = linear_to_srgb(render_layers(layers, focus_disparity, aperture))
    return photo, bokeh


def scene_photo_and_depth(seed=0, size=(512, 768)):
    """One random scene in memory: (photo H x W x 3 sRGB in [0, 1], EBB! depth map H/2 x W/2
    in [0, 1], near = bright), the same for a seed; for demos, notebooks and figures."""
    layers = make_scene(np.random.default_rng(seed), _check_size(size))
    depth01, _, _ = ebb_depth_map(visible_disparity(layers))
    return linear_to_srgb(render_layers(layers, 0.0, 0.0)), depth01.astype(np.float32)


# ------------------------------------------------------------------------------------ files


def _write_npy(path, array):
    import io

    buf = io.BytesIO()
    np.save(buf, np.asarray(array, np.float32))
    write_bytes_atomic(path, buf.getvalue())


def sample_paths(split_dir, stem):
    """The files of one sample (dict kind -> Path); `params` is written last."""
    split_dir = Path(split_dir)
    return {
        "photo": split_dir / "original" / f"{stem}.jpg",
        "depth": split_dir / "original_depth" / f"{stem}.png",
        "bokeh": split_dir / "bokeh" / f"{stem}.jpg",
        "depth_true": split_dir / "depth_true" / f"{stem}.npy",
        "params": split_dir / "params" / f"{stem}.json",
    }


def _scene_done(split_dir, stems):
    return all(p.exists() for stem in stems for p in sample_paths(split_dir, stem).values())


def _write_scene(split_dir, scene_seed, index, size, variants, aperture_range):
    rng = np.random.default_rng(scene_seed)
    layers = make_scene(rng, size)
    disparity = visible_disparity(layers)
    depth01, dmin, dmax = ebb_depth_map(disparity)
    photo = linear_to_srgb(render_layers(layers, 0.0, 0.0))
    shape_disps = [float(layer.disparity) for layer in layers[1:]]
    visible = np.array([np.count_nonzero(disparity == d) for d in shape_disps], np.float64) + 1
    visible_share = visible / visible.sum()
    for k in range(variants):
        stem = f"{index}" if variants == 1 else f"{index}_{k}"
        paths = sample_paths(split_dir, stem)
        # Focus mostly on one of the shapes (the subject; a well visible one is likelier),
        # sometimes on the background.
        if rng.random() < 0.8:
            focus = shape_disps[int(rng.choice(len(shape_disps), p=visible_share))]
        else:
            focus = float(rng.uniform(layers[0].disparity.min(), layers[0].disparity.max()))
        aperture = float(rng.uniform(*aperture_range))
        if paths["params"].exists() and all(p.exists() for p in paths.values()):
            continue
        bokeh = linear_to_srgb(render_layers(layers, focus, aperture))
        write_image(paths["photo"], photo)
        write_image(paths["depth"], depth01)
        write_image(paths["bokeh"], bokeh)
        _write_npy(paths["depth_true"], disparity)
        span = max(dmax - dmin, 1e-6)
        params = {
            "focus_disparity": focus,
            "aperture": aperture,
            # The same lens in the units of the 8-bit depth map (depth / 255): render_defocus(
            # photo, depth01 resized to the photo, focus_depth01, aperture_depth01) matches it.
            "focus_depth01": (focus - dmin) / span,
            "aperture_depth01": aperture * span,
            "disparity_range": [dmin, dmax],
            "coc_radius_px": "aperture * |disparity - focus_disparity| * max(height, width)",
            "size": list(size),
            "scene": index,
            "variant": k,
        }
        write_bytes_atomic(paths["params"], (json.dumps(params, indent=1) + "\n").encode())


def _check_size(size):
    h, w = (int(v) for v in size)
    if h < 32 or w < 32 or h % 2 or w % 2:
        raise ValueError(f"size must be two even numbers >= 32 (height, width), got {size}")
    return h, w


def generate_dataset(
    out_dir,
    n_train,
    n_test,
    size=(256, 384),
    seed=0,
    variants=1,
    aperture_range=DEFAULT_APERTURE,
):
    """Writes a synthetic set in the EBB! layout under `out_dir`; returns its Path.

    n_train, n_test: scenes per split (each gives `variants` samples); size: (height, width) of
    the full-resolution photo, even; aperture_range: (low, high) of the uniformly drawn aperture.
    Finished samples are kept, so an interrupted run can simply be started again.
    """
    out = Path(out_dir)
    h, w = _check_size(size)
    if variants < 1:
        raise ValueError(f"variants must be >= 1, got {variants}")
    config = {
        "format_version": FORMAT_VERSION,
        "n_train": int(n_train),
        "n_test": int(n_test),
        "size": [h, w],
        "seed": int(seed),
        "variants": int(variants),
        "aperture_range": [float(a) for a in aperture_range],
    }
    params_path = out / PARAMS_FILE
    if params_path.exists():
        old = json.loads(params_path.read_text())
        if old != config:
            raise ValueError(
                f"{out} already holds a synthetic set made with other parameters ({old}); "
                "use another output folder or delete this one"
            )
        if (out / COMPLETE_MARKER).exists():
            return out
    else:
        write_bytes_atomic(params_path, (json.dumps(config, indent=1) + "\n").encode())

    jobs = [(s, i) for s, n in zip(SPLITS, (n_train, n_test), strict=True) for i in range(n)]
    start, done, last_log = time.monotonic(), 0, 0.0
    for split, index in jobs:
        split_dir = out / split
        stems = [f"{index}"] if variants == 1 else [f"{index}_{k}" for k in range(variants)]
        if not _scene_done(split_dir, stems):
            scene_seed = [int(seed), SPLITS.index(split), int(index)]
            _write_scene(split_dir, scene_seed, index, (h, w), variants, aperture_range)
        done += 1
        now = time.monotonic()
        if now - last_log > 10 or done == len(jobs):
            rate = done / max(now - start, 1e-9)
            logging.info(
                "synthetic %s: %d/%d scenes, %.2f scenes/s, ETA %.0f s",
                out,
                done,
                len(jobs),
                rate,
                (len(jobs) - done) / max(rate, 1e-9),
            )
            last_log = now
    write_bytes_atomic(out / COMPLETE_MARKER, b"")
    return out


def ensure_synthetic(cache_dir, n_train=64, n_test=8, size=(256, 384), seed=0, **kwargs):
    """Returns the root of a synthetic set with these parameters under `cache_dir`,
    generating it (or finishing a half-written one) first if needed."""
    h, w = _check_size(size)
    variants = kwargs.get("variants", 1)
    name = f"synthetic_{h}x{w}_train{n_train}_test{n_test}_seed{seed}"
    if variants != 1:
        name += f"_var{variants}"
    aperture = tuple(kwargs.get("aperture_range", DEFAULT_APERTURE))
    if aperture != DEFAULT_APERTURE:
        name += f"_ap{aperture[0]:g}-{aperture[1]:g}"
    root = Path(cache_dir) / name
    if (root / COMPLETE_MARKER).exists():
        return root
    return generate_dataset(root, n_train, n_test, size=(h, w), seed=seed, **kwargs)


# -------------------------------------------------------------------------------------- CLI


def _parse_size(text):
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"--size must look like HxW (e.g. 1024x1536), got {text!r}") from None
    return h, w


def _parse_aperture_range(text):
    try:
        low, high = (float(v) for v in text.split(","))
    except ValueError:
        raise ValueError(
            f"--aperture_range must be LOW,HIGH (e.g. 0.01,0.08), got {text!r}"
        ) from None
    if not 0 < low <= high:
        raise ValueError(f"--aperture_range needs 0 < LOW <= HIGH, got {text!r}")
    return low, high


def main(argv=None):
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m pynet_bokeh.data.synthetic",
        description="Write a synthetic bokeh data set in the EBB! layout.",
    )
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--train", type=int, default=64, help="training scenes")
    parser.add_argument("--test", type=int, default=8, help="test scenes")
    parser.add_argument("--size", default="256x384", help="photo size HxW (EBB!: 1024x1536)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--variants", type=int, default=1, help="focus/aperture draws per scene")
    parser.add_argument(
        "--aperture_range",
        default=",".join(f"{a:g}" for a in DEFAULT_APERTURE),
        help="LOW,HIGH of the uniformly drawn aperture (blur K = aperture x disparity span x "
        "long side, in pixels); e.g. 0.01,0.08 for K up to ~60 px at 768 px",
    )
    args = parser.parse_args(argv)
    try:
        size = _parse_size(args.size)
        aperture = _parse_aperture_range(args.aperture_range)
        root = generate_dataset(
            args.out,
            args.train,
            args.test,
            size=size,
            seed=args.seed,
            variants=args.variants,
            aperture_range=aperture,
        )
    except ValueError as e:
        parser.error(str(e))
    print(f"synthetic set ready: {root}")


if __name__ == "__main__":
    logging.set_verbosity(logging.INFO)
    main()
