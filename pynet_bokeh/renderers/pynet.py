"""PyNET-Bokeh (Ignatov et al., CVPRW 2020): the EBB! look from a photo and its depth map.

It renders one look (Canon 7D, 50 mm f/1.8, focused where the photographer focused), so it
refuses the focus and blur controls. Weights: this package's `.weights.h5` (by layer name when
the trainer wrote it, else Keras' own order), a `.keras` file, a level folder holding
`final.weights.h5`, or the authors' TF1 checkpoint prefix (`pynet_bokeh_level_0`).
"""

from __future__ import annotations

import os

from pynet_bokeh.errors import UsageError, WeightsMismatchError
from pynet_bokeh.renderers.base import Renderer

FINAL_WEIGHTS = "final.weights.h5"
WEIGHTS_FORMATS = (
    ".weights.h5 (train_level.py or pynet-bokeh convert-tf1)",
    ".keras",
    "a level folder with final.weights.h5",
    "the authors' TF1 checkpoint prefix (pynet_bokeh_level_0)",
)


def load_pynet(path, **build_kwargs):
    """A full PyNET (`build_pynet(**build_kwargs)`) with the weights at `path` (any format of
    `WEIGHTS_FORMATS`). A missing path raises FileNotFoundError naming it; weights of another
    network raise WeightsMismatchError."""
    import keras

    from pynet_bokeh.models.pynet import build_pynet
    from pynet_bokeh.weights import keras_h5, tf1

    path = os.fspath(path)
    if os.path.isdir(path) and os.path.isfile(os.path.join(path, FINAL_WEIGHTS)):
        path = os.path.join(path, FINAL_WEIGHTS)
    if path.endswith(".keras"):
        if not os.path.isfile(path):
            raise FileNotFoundError(f"--weights {path}: file not found")
        try:
            model = keras.saving.load_model(path)
        except (ValueError, TypeError) as err:  # e.g. a Lambda layer, refused by safe mode
            raise WeightsMismatchError(
                f"--weights {path}: cannot load this .keras file safely "
                f"({str(err).splitlines()[0][:300]})"
            ) from None
        if not model.name.startswith("pynet"):
            raise WeightsMismatchError(
                f"--weights {path} holds {keras_h5.describe_weights_file(path)}, not PyNET "
                "('pynet')"
            )
        return model
    if path.endswith(".h5"):
        if not os.path.isfile(path):
            raise FileNotFoundError(
                f"--weights {path}: file not found; pass a .weights.h5 saved by train_level.py "
                "(model_dir/level_N/final.weights.h5) or by `pynet-bokeh convert-tf1`"
            )
        model = build_pynet(**build_kwargs)
        if keras_h5.has_layer_names(path):
            keras_h5.load_weights_by_name(model, path)
        else:
            try:
                model.load_weights(path)
            except ValueError as err:
                raise WeightsMismatchError(
                    f"--weights {path} holds {keras_h5.describe_weights_file(path)}, not the "
                    f"weights of PyNET ('pynet'): {str(err).splitlines()[0][:200]}"
                ) from None
        return model
    try:
        prefix = tf1.resolve_prefix(path)
    except FileNotFoundError:
        raise FileNotFoundError(
            f"--weights {path}: no such file or checkpoint; PyNET takes "
            + "; ".join(WEIGHTS_FORMATS)
        ) from None
    return tf1.load_tf1_checkpoint(build_pynet(**build_kwargs), prefix)


def convert_tf1_checkpoint(prefix, output, **build_kwargs):
    """The authors' checkpoint as this package's `.weights.h5` (written atomically)."""
    from pynet_bokeh.models.pynet import build_pynet
    from pynet_bokeh.weights import keras_h5, tf1

    output = os.fspath(output)
    if not output.endswith(".weights.h5"):
        raise UsageError(f"output {output!r} must end with .weights.h5 (Keras weights file)")
    model = tf1.load_tf1_checkpoint(build_pynet(**build_kwargs), prefix)
    return keras_h5.save_weights(model, output)


class PyNetRenderer(Renderer):
    name = "pynet"
    description = "PyNET-Bokeh, the EBB! look (Canon 7D, 50 mm f/1.8)"
    fixed_look = (
        "it renders the EBB! look: Canon 7D, 50 mm f/1.8, focused where the photographer focused"
    )
    needs_weights = True
    weights_formats = WEIGHTS_FORMATS
    training_task = "pynet_bokeh.training.pynet_task"
    option_flags = {"level": "level"}
    int8_calibration = True

    def __init__(self, weights=None, level=1, model=None):
        """`weights`: a path (see WEIGHTS_FORMATS); `model`: an already built PyNET instead."""
        from pynet_bokeh.models.pynet import check_level

        if model is None and weights is None:
            raise UsageError(f"--method {self.name} needs --weights ({', '.join(WEIGHTS_FORMATS)})")
        try:
            self.level = check_level(level)
        except ValueError as err:
            raise UsageError(f"--level: {err}") from None
        self.weights = weights
        self.model = model if model is not None else self.load(weights)

    @classmethod
    def load(cls, weights):
        """The network with the weights at `weights` (see WEIGHTS_FORMATS)."""
        from pynet_bokeh.inference import release_setup_memory, return_freed_buffers_to_the_os

        # Lower peak memory (see their docstrings): before the weights are read, and after.
        return_freed_buffers_to_the_os()
        model = load_pynet(weights)
        release_setup_memory()
        return model

    @property
    def label(self):
        name = os.path.basename(os.path.normpath(str(self.weights))) if self.weights else "model"
        return f"{self.name} L{self.level} ({name})"

    def _render(self, photo, depth, controls):
        from pynet_bokeh.inference import render_bokeh

        return render_bokeh(self.model, photo, depth, self.level)

    def export_spec(self, height, width, **options):
        return self.model, {"level": self.level}

    def photo_graph(self, height, width):
        """PyNET on the photo downscaled x0.5 (bilinear: TFLite has no bicubic resize) with the
        map as 4th channel; level 1's output (the photo's size) clipped to [0, 1]."""
        import tensorflow as tf

        from pynet_bokeh.models.pynet import level_model

        if self.level != 1:
            raise UsageError("--level: a photo-to-bokeh graph uses level 1 (the photo's size)")
        if height % 64 or width % 64:
            raise UsageError(
                f"--height {height} / --width {width}: PyNET's photo graph needs multiples of 64 "
                "(its input, half the photo, multiples of 32)"
            )
        net = level_model(self.model, 1)

        def render(image, depth):
            half = tf.image.resize(image, (height // 2, width // 2), method="bilinear")
            out = net(tf.concat([half, depth], axis=-1), training=False)
            return tf.clip_by_value(out, 0.0, 1.0)

        return render, (net,)


RENDERER = PyNetRenderer
