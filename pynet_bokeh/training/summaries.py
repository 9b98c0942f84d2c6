"""TensorBoard scalars and images without the `tensorboard` package.

`tf.summary.scalar` / `tf.summary.image` live in the tensorboard package, which this project
does not depend on; these write the same records (the "scalars" and "images" plugins' formats)
through core TensorFlow's `tf.summary.write`, so TensorBoard shows them as usual.
"""

from __future__ import annotations

import tensorflow as tf
from tensorflow.core.framework import summary_pb2


def _metadata(plugin: str) -> summary_pb2.SummaryMetadata:
    return summary_pb2.SummaryMetadata(
        plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name=plugin)
    )


def scalar(name: str, value, step) -> None:
    """One scalar, as tf.summary.scalar would write it (needs a default writer)."""
    tf.summary.write(name, tf.cast(value, tf.float32), step=step, metadata=_metadata("scalars"))


def image(name: str, images, step, max_outputs: int = 3) -> None:
    """NHWC float images in [0, 1], PNG-encoded as tf.summary.image would write them."""
    images = tf.convert_to_tensor(images)[:max_outputs]
    pixels = tf.image.convert_image_dtype(tf.clip_by_value(images, 0.0, 1.0), tf.uint8)
    encoded = tf.map_fn(tf.image.encode_png, pixels, fn_output_signature=tf.string)
    shape = tf.shape(pixels)
    dims = tf.strings.as_string([shape[2], shape[1]])  # width, height
    tf.summary.write(name, tf.concat([dims, encoded], 0), step=step, metadata=_metadata("images"))
