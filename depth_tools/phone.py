"""A depth network inside a phone graph: photo -> EBB! depth map in TF ops (builtin TFLite ops),
for `pynet_bokeh.export.photo_to_bokeh_spec`.

    depth_fn, track = megadepth_depth_fn("best_generalization_net_G.pth", 1024, 1536)

Same conversion as `depth_tools.generate` (log depth -> inverse depth -> resize to half the
photo's size -> min-max to [0, 1], 8-bit rounding, flat map = all near), with two changes a
TFLite graph needs: the photo goes to the network at half its size by a bilinear 2 x 2 average
(the generator resizes with antialiasing to --working_size) and the prediction is already at the
map's size (no bicubic resize, which TFLite lacks).
"""

from __future__ import annotations

import tensorflow as tf

from depth_tools.generate import FLAT_RTOL, FLAT_VALUE
from depth_tools.megadepth import MEGADEPTH_MULTIPLE, build_megadepth, load_megadepth_weights

__all__ = ["ebb_depth_from_log_depth", "megadepth_depth_fn", "reference_depth"]


def ebb_depth_from_log_depth(log_depth, round_8bit=True):
    """EBB! encoding in TF ops of a 1 x h x w x 1 log-depth prediction: `to_inverse_depth` then
    `encode_ebb_depth` / 255 (a flat map is FLAT_VALUE / 255 everywhere)."""
    inverse = tf.exp(-(log_depth - tf.reduce_min(log_depth)))
    lo, hi = tf.reduce_min(inverse), tf.reduce_max(inverse)
    span = hi - lo
    flat = span <= FLAT_RTOL * tf.maximum(tf.abs(hi), 1e-30)
    scaled = (inverse - lo) / tf.maximum(span, 1e-30)
    if round_8bit:
        scaled = tf.round(scaled * 255.0) / 255.0
    return tf.where(flat, FLAT_VALUE / 255.0, scaled)


def megadepth_depth_fn(weights, height, width):
    """(depth_fn, track): MegaDepth with `weights` (.pth or .weights.h5) turning a 1 x H x W x 3
    photo into its 1 x H/2 x W/2 x 1 EBB! map. H / 2 and W / 2 must be multiples of 16."""
    half = (int(height) // 2, int(width) // 2)
    if half[0] % MEGADEPTH_MULTIPLE or half[1] % MEGADEPTH_MULTIPLE:
        raise ValueError(
            f"--height {height} / --width {width}: MegaDepth runs at half the photo's size, "
            f"which must be a multiple of {MEGADEPTH_MULTIPLE} (use multiples of 32)"
        )
    net = load_megadepth_weights(build_megadepth(), weights)

    def depth_fn(image):
        small = tf.image.resize(image, half, method="bilinear")
        return ebb_depth_from_log_depth(net(small, training=False))

    return depth_fn, (net,)


def reference_depth(net, photo):
    """The Python pipeline's map for `photo` (H x W x 3): `depth_tools.generate`'s steps with
    the network at half the photo's size, as 8-bit EBB! values / 255 (H/2 x W/2)."""
    import numpy as np

    from depth_tools.generate import encode_ebb_depth, megadepth_source, to_inverse_depth
    from pynet_bokeh import image_io

    h, w = photo.shape[0] // 2, photo.shape[1] // 2
    small = np.clip(
        tf.image.resize(photo, (h, w), method="bilinear", antialias=True).numpy(), 0.0, 1.0
    )
    source = megadepth_source(net)
    pred = np.asarray(source.predict(small[None]))[0, ..., 0]
    inverse = image_io.resize_bicubic(
        to_inverse_depth(pred, source.output).astype(np.float32), (h, w)
    )
    return encode_ebb_depth(inverse).astype(np.float32) / 255.0
