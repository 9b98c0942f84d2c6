"""VGG-19 `relu5_4` features for PyNET's level-1 perceptual loss, from a weights file the user has.

Two files are accepted (no download happens at run time):

- Keras: `vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5`
  (https://storage.googleapis.com/tensorflow/keras-applications/vgg19/vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5).
  Caffe-converted weights: the network expects BGR input minus the ImageNet mean.
- MatConvNet: `imagenet-vgg-verydeep-19.mat` (https://www.vlfeat.org/matconvnet/pretrained/),
  the file the PyNET-Bokeh authors used. RGB input minus the ImageNet mean; kernels are stored
  [width, height, in, out] and are transposed to Keras' [height, width, in, out], as the
  authors' `vgg.py` does.

Either way `VGGFeatures(img)` takes RGB in [0, 1] and applies the matching preprocessing.
"""

from __future__ import annotations

import os

import keras
import numpy as np
import tensorflow as tf

IMAGENET_MEAN_RGB = (123.68, 116.779, 103.939)
CONTENT_LAYER = "block5_conv4"  # Keras' name for VGG-19 conv5_4; its output is relu5_4.
KERAS_FILE = "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5"
MATCONVNET_FILE = "imagenet-vgg-verydeep-19.mat"
WHERE_TO_GET = (
    f"pass --vgg_weights with the Keras file {KERAS_FILE} "
    "(https://storage.googleapis.com/tensorflow/keras-applications/vgg19/"
    f"{KERAS_FILE}) or the MatConvNet file {MATCONVNET_FILE} "
    "(https://www.vlfeat.org/matconvnet/pretrained/)"
)

# VGG-19's conv layers up to conv5_4, in order: (MatConvNet name, Keras name).
CONV_LAYERS = tuple(
    (f"conv{b}_{i}", f"block{b}_conv{i}")
    for b, n in ((1, 2), (2, 2), (3, 4), (4, 4), (5, 4))
    for i in range(1, n + 1)
)


class VGGWeightsError(ValueError):
    """A VGG-19 weights file is missing, of an unknown kind, or does not hold VGG-19."""


def vgg19_backbone() -> keras.Model:
    """Keras' VGG-19 convolutional part, random weights, cut at relu5_4 (any input size)."""
    full = keras.applications.VGG19(weights=None, include_top=False, input_shape=(None, None, 3))
    return keras.Model(full.input, full.get_layer(CONTENT_LAYER).output, name="vgg19_relu5_4")


class VGGFeatures:
    """relu5_4 features of RGB images in [0, 1], with the preprocessing the weights expect."""

    def __init__(self, model: keras.Model, channel_order: str, path: str = ""):
        if channel_order not in ("rgb", "bgr"):
            raise ValueError(f"channel_order must be 'rgb' or 'bgr', got {channel_order!r}")
        self.model = model
        self.model.trainable = False
        self.channel_order = channel_order
        self.path = path

    def preprocess(self, img01):
        """RGB [0, 1] -> the network's input (0..255, mean removed, channels reordered)."""
        x = tf.cast(img01, tf.float32) * 255.0 - tf.constant(IMAGENET_MEAN_RGB, tf.float32)
        return x[..., ::-1] if self.channel_order == "bgr" else x

    def __call__(self, img01):
        return self.model(self.preprocess(img01), training=False)


def load_vgg19(path) -> VGGFeatures:
    """VGG-19 relu5_4 features from a Keras `.h5` or MatConvNet `.mat` weights file."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise VGGWeightsError(f"VGG-19 weights file not found: {path}; {WHERE_TO_GET}")
    suffix = os.path.splitext(path)[1].lower()
    if suffix in (".h5", ".hdf5"):
        return _load_keras_h5(path)
    if suffix == ".mat":
        return _load_matconvnet(path)
    raise VGGWeightsError(
        f"VGG-19 weights file {path}: unknown kind {suffix!r} (expected .h5 or .mat); {WHERE_TO_GET}"
    )


def _load_keras_h5(path) -> VGGFeatures:
    full = keras.applications.VGG19(weights=None, include_top=False, input_shape=(None, None, 3))
    try:
        full.load_weights(path)
    except Exception as err:  # h5py / Keras raise many kinds; the cause is the file either way.
        raise VGGWeightsError(
            f"{path} is not Keras' VGG-19 notop weights file ({KERAS_FILE}): {err}"
        ) from err
    model = keras.Model(full.input, full.get_layer(CONTENT_LAYER).output, name="vgg19_relu5_4")
    return VGGFeatures(model, "bgr", path)


def _matconvnet_layers(path) -> dict:
    """{layer name: (kernel [w, h, in, out], bias)} of the conv layers in a MatConvNet file."""
    import scipy.io  # scipy comes with scikit-image; imported here as only .mat files need it.

    try:
        data = scipy.io.loadmat(path)
    except Exception as err:
        raise VGGWeightsError(f"cannot read MatConvNet file {path}: {err}") from err
    if "layers" not in data:
        raise VGGWeightsError(
            f"{path} has no 'layers' variable: not a MatConvNet network ({MATCONVNET_FILE})"
        )
    found = {}
    for cell in np.ravel(data["layers"]):
        layer = cell.ravel()[0]
        names = layer.dtype.names or ()
        if "name" not in names or "weights" not in names:
            continue
        name = str(np.ravel(layer["name"])[0])
        weights = np.ravel(layer["weights"])
        if weights.size == 1 and weights.dtype == object:
            weights = np.ravel(weights[0])
        if weights.size == 2:
            found[name] = (np.asarray(weights[0]), np.asarray(weights[1]))
    return found


def _load_matconvnet(path) -> VGGFeatures:
    found = _matconvnet_layers(path)
    model = vgg19_backbone()
    for mat_name, keras_name in CONV_LAYERS:
        if mat_name not in found:
            raise VGGWeightsError(
                f"{path} has no layer {mat_name!r}: not VGG-19 ({MATCONVNET_FILE})"
            )
        kernel, bias = found[mat_name]
        kernel = np.transpose(kernel, (1, 0, 2, 3)).astype(np.float32)
        layer = model.get_layer(keras_name)
        want = tuple(layer.kernel.shape)
        if kernel.shape != want:
            raise VGGWeightsError(
                f"{path}: layer {mat_name} has kernel shape {kernel.shape} after transposing, "
                f"VGG-19 needs {want}"
            )
        layer.set_weights([kernel, bias.reshape(-1).astype(np.float32)])
    return VGGFeatures(model, "rgb", path)
