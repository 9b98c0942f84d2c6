"""Inputs for calibration and checks: real photos + EBB! depth maps fitted to a size, or
generated scenes."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pynet_bokeh import image_io


def fit_to_size(x, size):
    """Resizes H x W x C to cover `size` (h, w) keeping the aspect, then centre-crops to it."""
    h, w = x.shape[:2]
    th, tw = int(size[0]), int(size[1])
    scale = max(th / h, tw / w)
    nh, nw = max(th, int(round(h * scale))), max(tw, int(round(w * scale)))
    if (nh, nw) != (h, w):
        x = np.clip(image_io.resize_bicubic(x, (nh, nw)), 0.0, 1.0)
    top, left = (nh - th) // 2, (nw - tw) // 2
    return np.ascontiguousarray(x[top : top + th, left : left + tw])


def find_photo_depth_pairs(folder, depth_dir=None):
    """(photo, depth map) paths in `folder`: its photos (or `images/`'s, or `original/`'s).

    Depth maps are matched by stem as `pynet_bokeh.inference.find_depth_map` does (`depth_dir`,
    else `depth_maps/`, `original_depth/`, `depth/` beside the photos' folder).
    """
    from pynet_bokeh.inference import find_depth_map, list_photos

    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"calibration folder {folder} does not exist")
    for sub in ("images", "original"):
        if (folder / sub).is_dir():
            folder = folder / sub
            break
    photos = list_photos([folder])
    if not photos:
        raise FileNotFoundError(
            f"calibration folder {folder} holds no JPEG/PNG photos; pass a folder of photos with "
            "their EBB! depth maps (e.g. images/ + depth_maps/)"
        )
    return [(p, find_depth_map(p, depth_dir)) for p in photos]


def photo_samples(folder, size, count=None, depth_dir=None):
    """Network inputs (H x W x 4 float32) made from real photos + depth maps in `folder`.

    Each photo goes through the EBB! convention (`image_io.ebb_input`: x0.5 bicubic, depth as the
    4th channel) and is then fitted to `size` (h, w) by `fit_to_size`.
    """
    pairs = find_photo_depth_pairs(folder, depth_dir)[:count]
    samples = []
    for photo_path, depth_path in pairs:
        x = image_io.ebb_input(
            image_io.read_photo(photo_path),
            image_io.read_depth(depth_path),
            depth_name=str(depth_path),
        )
        samples.append(fit_to_size(x, size))
    return samples


def synthetic_samples(size, count=1, seed=0):
    """Network inputs (H x W x 4) from generated scenes (`pynet_bokeh.data.synthetic`)."""
    from pynet_bokeh.data import synthetic

    rng = np.random.default_rng(seed)
    h, w = int(size[0]), int(size[1])
    samples = []
    for _ in range(count):
        layers = synthetic.make_scene(rng, (2 * h, 2 * w))
        photo, _ = synthetic.render_sample(layers, 0.5, 0.0)
        depth, _, _ = synthetic.ebb_depth_map(synthetic.visible_disparity(layers))
        samples.append(image_io.ebb_input(photo, depth))
    return samples
