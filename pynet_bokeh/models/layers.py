"""Small serializable layers shared by the models (no `Lambda`: they break safe loading)."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="pynet_bokeh")
class SpaceToDepth(keras.layers.Layer):
    """`tf.nn.space_to_depth` channel order: out[..., (dy * b + dx) * C + c]."""

    def __init__(self, block_size=2, **kwargs):
        super().__init__(**kwargs)
        self.block_size = block_size

    def call(self, x):
        return ops.space_to_depth(x, self.block_size)

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        b = self.block_size
        return (
            n,
            None if h is None else h // b,
            None if w is None else w // b,
            None if c is None else c * b * b,
        )

    def get_config(self):
        return {**super().get_config(), "block_size": self.block_size}


@keras.saving.register_keras_serializable(package="pynet_bokeh")
class ScaledTanh(keras.layers.Layer):
    """`tanh(x) * scale + offset`: PyNET's output activation (0.58, 0.5)."""

    def __init__(self, scale=0.58, offset=0.5, **kwargs):
        super().__init__(**kwargs)
        self.scale = scale
        self.offset = offset

    def call(self, x):
        return ops.tanh(x) * self.scale + self.offset

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "scale": self.scale, "offset": self.offset}
