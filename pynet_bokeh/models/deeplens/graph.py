"""The DeepLens graph: signed defocus, the DoF pyramid, the whole-graph Keras model and the
forward pass on an explicit pyramid (compiled for big photos)."""

import weakref

import keras
import numpy as np
import tensorflow as tf

from pynet_bokeh.models.deeplens.networks import COMPILE_PIXELS, SCOPES
from pynet_bokeh.models.deeplens_layers import (
    FocalDepthAt,
    ResizeLike,
    ReverseChannels,
    SignedDefocus,
)


def _batched(x, name, channels):
    x = tf.convert_to_tensor(x, tf.float32)
    if x.shape.rank == 3:
        x = x[None]
    if x.shape.rank != 4 or x.shape[-1] != channels:
        raise ValueError(
            f"{name} must be an H x W x {channels} (or N x H x W x {channels}) array, "
            f"got shape {tuple(x.shape)}."
        )
    return x


def _check_half(lo, hi, lo_name, hi_name):
    for axis, what in ((1, "height"), (2, "width")):
        if hi.shape[axis] // 2 != lo.shape[axis]:
            raise ValueError(
                f"{lo_name} {what} must be half of {hi_name}'s (rounded down): "
                f"got {lo.shape[axis]} and {hi.shape[axis]}. Build the pyramid with "
                "deeplens_pyramid(photo)."
            )


def signed_defocus(depth, aperture, focus_xy=None, focus_depth=None):
    """(`(depth - d_f) * aperture`, d_f per sample), d_f = depth at focus_xy (x, y) or focus_depth."""
    n, h, w = depth.shape[0], depth.shape[1], depth.shape[2]
    if focus_depth is not None:
        focal = tf.cast(tf.broadcast_to(focus_depth, (n,)), tf.float32)
    else:
        if focus_xy is None:
            raise ValueError("give focus_xy (x, y) or focus_depth in [0, 1].")
        focus = np.broadcast_to(np.asarray(focus_xy, dtype=np.int64).reshape(-1, 2), (n, 2))
        xs, ys = focus[:, 0], focus[:, 1]
        if (xs < 0).any() or (ys < 0).any() or (xs >= w).any() or (ys >= h).any():
            raise ValueError(
                f"focus_xy {focus.tolist()} lies outside the {w} x {h} (width x height) "
                "working image."
            )
        idx = np.stack([np.arange(n), ys, xs, np.zeros(n, np.int64)], axis=1)
        focal = tf.gather_nd(depth, idx)
    aperture = tf.reshape(tf.cast(tf.broadcast_to(aperture, (n,)), tf.float32), (n, 1, 1, 1))
    return (depth - tf.reshape(focal, (n, 1, 1, 1))) * aperture, focal


def _given_depth(depth, im320):
    depth = tf.convert_to_tensor(depth, tf.float32)
    if depth.shape.rank == 2:
        depth = depth[None, ..., None]
    elif depth.shape.rank == 3:
        depth = depth[None] if depth.shape[-1] == 1 and im320.shape[0] == 1 else depth[..., None]
    if tuple(depth.shape[1:3]) != tuple(im320.shape[1:3]) or depth.shape[-1] != 1:
        raise ValueError(
            f"depth has shape {tuple(depth.shape)}, image_320 {tuple(im320.shape)}: give one "
            "depth channel at the working image's size."
        )
    return depth


_COMPILED = weakref.WeakKeyDictionary()


class _CompiledModules:
    """The four modules as shape-relaxed tf.functions (inference): graph execution frees each
    intermediate as soon as it is used, where eager Keras keeps them all (6 GB for a 1280 photo)."""

    def __init__(self, model):
        for attr in SCOPES:
            setattr(self, attr, self._compile(getattr(model, attr)))
        self.combine = model.combine

    @staticmethod
    def _compile(module):
        fn = tf.function(
            lambda *xs: module(list(xs) if len(xs) > 1 else xs[0], training=False),
            reduce_retracing=True,
        )
        return lambda inputs, training=False: fn(
            *(inputs if isinstance(inputs, list) else [inputs])
        )


def compiled_modules(model):
    """`model`'s modules as cached tf.functions, for repeated inference (one trace per shape kind)."""
    if model not in _COMPILED:
        _COMPILED[model] = _CompiledModules(model)
    return _COMPILED[model]


def dof_pyramid(model, levels_bgr, signed, training=False):
    """DoF images (BGR, unclipped) at every level: lens blur at levels[0], then SR per level.

    Works on eager tensors and on Keras symbolic tensors (graph building) alike. The second SR
    pass gets the signed defocus resized to the 640 level, as in the original.
    """
    kernel = model.lensblur_net([levels_bgr[0], signed], training=training)
    dof = model.combine([kernel, model.feature_net(levels_bgr[0], training=training)])
    dofs, s_lo = [dof], signed
    for i, (lo, hi) in enumerate(zip(levels_bgr[:-1], levels_bgr[1:], strict=True)):
        if i > 0:
            s_lo = ResizeLike(name=f"depth_signed_{320 * 2**i}")([signed, lo])
        dof = model.sr_net([lo, dof, s_lo, hi], training=training)["dof"]
        dofs.append(dof)
    return dofs


def build_deeplens_graph(model, scale=2, focus="depth", name=None):
    """One functional Keras model, sharing `model`'s four modules, for the whole graph.

    Inputs (dict; RGB in [0, 1]): `image_320` and, for scale 2 / 4, `image_640` / `image_1280`
    (each level half the next, rounded down); `aperture` (N, 1); and `focal_depth` (N, 1) when
    focus="depth", or `focus_xy` (N, 2) in image_320 pixels when focus="point".
    Output: the top level's DoF image, RGB, unclipped (the trainer's "all" stage uses it).
    """
    if scale not in (1, 2, 4):
        raise ValueError(f"scale must be 1, 2 or 4, got {scale}")
    names = ["image_320", "image_640", "image_1280"][: scale.bit_length()]
    inputs = {n: keras.Input((None, None, 3), name=n) for n in names}
    inputs["aperture"] = keras.Input((1,), name="aperture")
    bgr = [ReverseChannels(name=f"{n}_bgr")(inputs[n]) for n in names]
    depth = model.depth_net(bgr[0])["depth"]
    if focus == "depth":
        inputs["focal_depth"] = focal = keras.Input((1,), name="focal_depth")
    elif focus == "point":
        inputs["focus_xy"] = keras.Input((2,), name="focus_xy")
        focal = FocalDepthAt(name="focal_depth")([depth, inputs["focus_xy"]])
    else:
        raise ValueError(f"focus must be 'depth' or 'point', got {focus!r}")
    signed = SignedDefocus(name="depth_signed")([depth, focal, inputs["aperture"]])
    dof = dof_pyramid(model, bgr, signed)[-1]
    out = ReverseChannels(name="dof_rgb")(dof)
    return keras.Model(inputs, out, name=name or f"deeplens_{320 * scale}")


def deeplens_forward(
    model,
    image_320,
    focus_xy,
    aperture,
    image_640=None,
    image_1280=None,
    depth=None,
    focus_depth=None,
    training=False,
    clip=True,
    compiled=None,
):
    """The original graph on an explicit pyramid (RGB float in [0, 1], HxWx3 or NxHxWx3).

    focus_xy: (x, y) in image_320 pixels (one pair, or one per sample), or None with
    focus_depth (the depth value to keep sharp); aperture in [0, 1].
    depth: optional inverse depth (larger = nearer) in [0, 1] at image_320's size, used instead
    of the depth network (e.g. a map from depth_tools, or known depth in tests).
    Returns a dict: `depth`, `depth_signed`, `focal_depth`, `dof_320`, and `dof_640` / `dof_1280`
    when those levels are given (RGB; clipped to [0, 1] unless clip=False; the second SR pass
    always gets the unclipped `dof_640`, as in the original), `depth_raw` when the net ran.
    compiled: run the modules as tf.functions (default: when the top level has >= 0.5 MPix;
    eager Keras keeps every intermediate alive, about 6 GB for a 1280 x 960 photo, 2.4 GB
    compiled; tracing costs seconds once per module and size).
    Batched inputs give batched outputs, H x W x 3 inputs unbatched ones.
    """
    unbatched = tf.convert_to_tensor(image_320).shape.rank == 3
    if image_1280 is not None and image_640 is None:
        raise ValueError("image_1280 needs image_640 (the 4x path runs the SR module twice).")
    im320 = _batched(image_320, "image_320", 3)[..., ::-1]
    out = {}
    if compiled is None:  # big photos: graph execution (memory); small ones: no tracing wait
        top = (
            image_1280
            if image_1280 is not None
            else image_640
            if image_640 is not None
            else image_320
        )
        compiled = np.prod(np.shape(top)[-3:-1]) >= COMPILE_PIXELS
    modules = compiled_modules(model) if compiled and not training else model
    if depth is None:
        d = modules.depth_net(im320, training=training)
        out["depth_raw"], depth = d["depth_raw"], d["depth"]
    else:
        depth = _given_depth(depth, im320)
    signed, focal = signed_defocus(depth, aperture, focus_xy, focus_depth)
    levels = [im320]
    for level, image_hi in (("640", image_640), ("1280", image_1280)):
        if image_hi is None:
            break
        hi = _batched(image_hi, f"image_{level}", 3)[..., ::-1]
        _check_half(
            levels[-1], hi, "image_320" if level == "640" else "image_640", f"image_{level}"
        )
        levels.append(hi)
    dofs = dof_pyramid(modules, levels, signed, training=training)
    out.update(depth=depth, depth_signed=signed, focal_depth=focal)
    out.update({f"dof_{320 * 2**i}": dof for i, dof in enumerate(dofs)})
    for key in [k for k in out if k.startswith("dof_")]:
        rgb = out[key][..., ::-1]
        out[key] = tf.clip_by_value(rgb, 0.0, 1.0) if clip else rgb
    if unbatched:
        out = {k: v[0] for k, v in out.items()}
    return out
