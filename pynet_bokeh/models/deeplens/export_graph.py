"""A fixed-size DeepLens graph for TFLite: photo, focus point and aperture in, bokeh out."""

import keras
import numpy as np
import tensorflow as tf

from pynet_bokeh.models.deeplens.graph import dof_pyramid
from pynet_bokeh.models.deeplens.networks import MAX_SIDE
from pynet_bokeh.models.deeplens_layers import (
    FocalDepthAt,
    ReverseChannels,
    SignedDefocus,
)


def export_scale(height, width):
    """The pyramid scale (1, 2, 4) of a fixed export size; raises when it cannot be exported."""
    long_side = max(height, width)
    if long_side > MAX_SIDE:
        raise ValueError(
            f"export size {width} x {height}: the long side must be at most {MAX_SIDE} (the "
            "evaluator caps photos there); resize photos before the model instead."
        )
    scale = 4 if long_side >= MAX_SIDE else 2 if long_side >= MAX_SIDE // 2 else 1
    if height % scale or width % scale or min(height, width) // scale < 8:
        raise ValueError(
            f"export size {width} x {height} takes the {scale}x path: height and width must be "
            f"multiples of {scale} (its INTER_AREA halvings are then exact 2 x 2 means) and at "
            f"least {8 * scale}."
        )
    return scale


def deeplens_export_function(model, height, width):
    """A fixed-size Keras model for TFLite: photo in, shallow depth of field out (builtin ops).

    Inputs: `image` (1, height, width, 3) RGB in [0, 1]; `focus_xy` (1, 2) float, the focus point
    in image pixels (x, y); `aperture` (1, 1) in [0, 1]. Outputs: `image` (RGB, clipped to
    [0, 1], the input's size) and `depth` (the working-size inverse depth in [0, 1]).
    The pyramid is the evaluator's (scale by the long side: 1280 -> 4x, >= 640 -> 2x, else 1x).
    """
    scale = export_scale(height, width)
    image = keras.Input((height, width, 3), batch_size=1, name="image")
    focus_xy = keras.Input((2,), batch_size=1, name="focus_xy")
    aperture = keras.Input((1,), batch_size=1, name="aperture")
    levels = [ReverseChannels(name="image_bgr")(image)]
    for i in range(scale.bit_length() - 1):
        pool = keras.layers.AveragePooling2D(2, name=f"half_{i + 1}")
        levels.insert(0, pool(levels[0]))
    depth = model.depth_net(levels[0])["depth"]
    focal = FocalDepthAt(scale=scale, name="focal_depth")([depth, focus_xy])
    signed = SignedDefocus(name="depth_signed")([depth, focal, aperture])
    dof = dof_pyramid(model, levels, signed)[-1]
    dof = keras.layers.ReLU(max_value=1.0, name="clip")(ReverseChannels(name="dof_rgb")(dof))
    return keras.Model(
        {"image": image, "focus_xy": focus_xy, "aperture": aperture},
        {"image": dof, "depth": depth},
        name=f"deeplens_export_{height}x{width}",
    )


def deeplens_export_spec(model, height, width):
    """(callable, keyword arguments) for `pynet_bokeh.export.export_tflite(fn, output,
    height=height, width=width, **kwargs)`: `deeplens_export_function`'s model behind a function of
    the named inputs, the input specs, the model to track, a parity input (a smooth random
    photo, focus at its centre, aperture 0.5) and a description of the inputs and outputs."""
    net = deeplens_export_function(model, height, width)
    specs = {
        "image": tf.TensorSpec([1, height, width, 3], tf.float32, name="image"),
        "focus_xy": tf.TensorSpec([1, 2], tf.float32, name="focus_xy"),
        "aperture": tf.TensorSpec([1, 1], tf.float32, name="aperture"),
    }
    rng = np.random.default_rng(0)
    import cv2

    photo = cv2.resize(
        rng.random((height // 8 + 1, width // 8 + 1, 3)).astype(np.float32), (width, height)
    )
    feeds = {
        "image": photo[None],
        "focus_xy": np.array([[width // 2, height // 2]], np.float32),
        "aperture": np.array([[0.5]], np.float32),
    }
    metadata = {
        "model": "deeplens",
        "inputs_meaning": {
            "image": "RGB photo in [0, 1], NHWC",
            "focus_xy": "focus point (x, y) in image pixels",
            "aperture": "0 (all sharp) .. 1 (shallowest depth of field)",
        },
        "outputs_meaning": {
            "image": "RGB shallow-depth-of-field photo in [0, 1], the input's size",
            "depth": f"inverse depth in [0, 1] (near = 1) at 1/{export_scale(height, width)} size",
        },
    }

    def serve(image, focus_xy, aperture):
        return net({"image": image, "focus_xy": focus_xy, "aperture": aperture}, training=False)

    extra = {"input_specs": specs, "track": [net], "parity_feeds": feeds, "metadata": metadata}
    return serve, extra
