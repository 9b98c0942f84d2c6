"""DeepLens (Wang et al., SIGGRAPH Asia 2018) in Keras 3, numerically equal to the authors' TF1 graph.

Port of `scott89/deeplens_eval` (HEAD 3dbc1b0, inference only); see `shared/specs/deeplens.md`.
Four functional sub-models keep the original layer names (the checkpoint's
`Network/Network/<Sub>/<layer>/<var>`):

- `depth_net` (`Depth`): ResNet-50 + pyramid-pooling decoder, always run at 320 x 320; outputs
  `depth_raw` (320 x 320) and `depth` (resized to the input, min-max normalised inverse depth).
- `lensblur_net` (`Lensblur`, the KernelNet): image + signed defocus -> 31 normalised weights.
- `feature_net` (`Feature`): the image and 30 + 30 + 15 + 15 blurred feature maps (31 candidates).
- `sr_net` (`SR`): guided upsampling of a DoF image by 2, used once or twice with the same weights.

The sub-models work in the original's BGR order; the public functions here take and return RGB.
"""

import os
import weakref

import keras
import numpy as np
import tensorflow as tf

from pynet_bokeh.models.deeplens_layers import (
    ApplyKernel,
    FocalDepthAt,
    LegacyBilinearResize,
    MinMaxNormalize,
    NormalizeKernel,
    ResizeLike,
    ReverseChannels,
    SignedDefocus,
    SymmetricPad,
    Uint8Quantize,
    legacy_bilinear_resize,
)

DEPTH_SIZE = 320
# tf.layers.batch_normalization says 1e-5; TF 1.8's fused kernel raised it to 1.001e-5.
BN_EPSILON = 1.001e-5
BN_MOMENTUM = 0.99
LRELU_SLOPE = 0.2
MAX_SIDE = 1280
COMPILE_PIXELS = 500_000
SCOPES = {
    "depth_net": "Depth",
    "lensblur_net": "Lensblur",
    "feature_net": "Feature",
    "sr_net": "SR",
}


# ----------------------------------------------------------------------------- building blocks
def _conv(
    x, filters, kernel, name, strides=1, dilation=1, padding="same", use_bias=False, act=None
):
    return keras.layers.Conv2D(
        filters,
        kernel,
        strides=strides,
        dilation_rate=dilation,
        padding=padding,
        use_bias=use_bias,
        activation=act,
        name=name,
    )(x)


def _bn(x, name, act=None):
    x = keras.layers.BatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name=name)(x)
    if act == "relu":
        return keras.layers.ReLU(name=f"{name}_relu")(x)
    if act == "lrelu":
        return keras.layers.LeakyReLU(negative_slope=LRELU_SLOPE, name=f"{name}_lrelu")(x)
    return x


def _conv_bn(x, filters, kernel, conv_name, bn_name, act, **conv_kwargs):
    return _bn(_conv(x, filters, kernel, conv_name, **conv_kwargs), bn_name, act)


def _bottleneck(x, block, mid, out, strides=1, dilation=1, projection=False, lensblur=False):
    """Caffe ResNet bottleneck `res{block}`.

    Depth: stride on the 1x1 `branch2a`, shortcut BN without activation.
    Lensblur: stride on the last 1x1 `branch2c`, shortcut BN followed by ReLU.
    """
    s_a, s_c = (1, strides) if lensblur else (strides, 1)
    y = _conv_bn(x, mid, 1, f"res{block}_branch2a", f"bn{block}_branch2a", "relu", strides=s_a)
    y = _conv_bn(
        y, mid, 3, f"res{block}_branch2b", f"bn{block}_branch2b", "relu", dilation=dilation
    )
    y = _conv_bn(y, out, 1, f"res{block}_branch2c", f"bn{block}_branch2c", None, strides=s_c)
    if projection:
        act = "relu" if lensblur else None
        x = _conv_bn(x, out, 1, f"res{block}_branch1", f"bn{block}_branch1", act, strides=strides)
    y = keras.layers.Add(name=f"res{block}")([x, y])
    return keras.layers.ReLU(name=f"res{block}_relu")(y)


def _feature_convs(x, prefix=""):
    """FeaNet layout: symmetric pad + VALID conv (bias, ReLU) x 4, concatenated with the input."""
    feats = [x]
    for name, pad, kernel, filters in (
        ("fea1", 1, 3, 30),
        ("fea2", 2, 5, 30),
        ("fea3", 2, 5, 15),
        ("fea4", 2, 5, 15),
    ):
        x = SymmetricPad(pad, name=f"{prefix}{name}_pad")(x)
        x = _conv(x, filters, kernel, f"{prefix}{name}", padding="valid", use_bias=True, act="relu")
        feats.append(x)
    return keras.layers.Concatenate(name=f"{prefix}fea_output")(feats)


# ----------------------------------------------------------------------------- the four modules
def build_depth_net(name="Depth"):
    """Depth: BGR image (any size) -> {"depth_raw": 320x320 raw, "depth": input size, in [0, 1]}."""
    image = keras.Input((None, None, 3), name="image")
    x = LegacyBilinearResize(size=(DEPTH_SIZE, DEPTH_SIZE), name="resize_320")(image)
    x = keras.layers.Rescaling(1.0, offset=-0.5, name="offset")(x)
    x = keras.layers.ZeroPadding2D(3, name="conv1_pad")(x)
    x = _conv(x, 64, 7, "conv1", strides=2, padding="valid", use_bias=True)
    s1 = x = _bn(x, "bn_conv1", "relu")
    x = keras.layers.MaxPooling2D(3, 2, padding="same", name="pool1")(x)
    x = _bottleneck(x, "2a", 64, 256, projection=True)
    x = _bottleneck(x, "2b", 64, 256)
    s2 = x = _bottleneck(x, "2c", 64, 256)
    x = _bottleneck(x, "3a", 128, 512, strides=2, projection=True)
    for b in "bcd":
        x = _bottleneck(x, f"3{b}", 128, 512)
    x = _bottleneck(x, "4a", 256, 1024, dilation=2, projection=True)
    for b in "bcdef":
        x = _bottleneck(x, f"4{b}", 256, 1024, dilation=2)

    x = _conv_bn(x, 256, 1, "spp_conv1", "spp_bn1", "lrelu")
    branches = [x]
    for tag, k in zip("abcd", (40, 20, 10, 5), strict=True):
        y = keras.layers.AveragePooling2D(k, k, name=f"spp_pool_{tag}")(x)
        y = _conv_bn(y, 32, 1, f"spp_conv_{tag}", f"spp_bn_{tag}", "lrelu")
        branches.append(LegacyBilinearResize(scale=k, name=f"spp_up_{tag}")(y))
    x = keras.layers.Concatenate(name="spp_concat")(branches)
    x = _conv_bn(x, 64, 3, "spp_conv2", "spp_bn2", "lrelu")
    x = LegacyBilinearResize(scale=2, name="spp_up2")(x)
    y = _conv_bn(s2, 64, 3, "spp_conv3_1", "spp_bn3_1", "lrelu")
    x = keras.layers.Concatenate(name="spp_concat3")([x, y])
    x = _conv_bn(x, 64, 3, "spp_conv3_2", "spp_bn3_2", "lrelu")
    x = LegacyBilinearResize(scale=2, name="spp_up3")(x)
    y = _conv_bn(s1, 64, 3, "spp_conv4_1", "spp_bn4_1", "lrelu")
    x = keras.layers.Concatenate(name="spp_concat4")([x, y])
    x = _conv_bn(x, 64, 3, "spp_conv4_2", "spp_bn4_2", "lrelu")
    x = LegacyBilinearResize(scale=2, name="spp_up4")(x)

    a = _conv_bn(x, 64, 3, "depth_conv1", "depth_bn1", "lrelu")
    b = _conv_bn(a, 64, 3, "depth_conv2", "depth_bn2", None)
    x = keras.layers.Add(name="depth_add2")([a, b])
    x = keras.layers.LeakyReLU(negative_slope=LRELU_SLOPE, name="depth_add2_lrelu")(x)
    x = keras.layers.Dropout(0.05, name="depth_dropout")(x)
    raw = _conv(x, 1, 1, "depth_pre", use_bias=True)
    depth = ResizeLike(name="depth_resize")([raw, image])
    depth = MinMaxNormalize(name="depth_norm")(depth)
    return keras.Model(image, {"depth_raw": raw, "depth": depth}, name=name)


def build_lensblur_net(name="Lensblur"):
    """KernelNet: BGR image + signed defocus (same size) -> 31 per-pixel weights, normalised."""
    image = keras.Input((None, None, 3), name="image")
    signed = keras.Input((None, None, 1), name="depth_signed")
    img = keras.layers.Rescaling(1.0, offset=-0.5, name="offset")(image)
    x = keras.layers.Concatenate(name="concat_shallow")([img, signed])
    shallow = _conv_bn(x, 64, 7, "conv1_shallow", "bn1_shallow", "relu")
    x = _conv_bn(signed, 64, 7, "conv1", "bn1", "relu", strides=4)
    x = _bottleneck(x, "2a", 64, 128, projection=True, lensblur=True)
    x = _bottleneck(x, "2b", 64, 256, strides=2, projection=True, lensblur=True)
    x = _bottleneck(x, "3a", 64, 256, lensblur=True)
    x = ResizeLike(name="upsample")([x, signed])
    x = keras.layers.Concatenate(name="concat")([x, shallow])
    x = _bottleneck(x, "4a", 64, 128, projection=True, lensblur=True)
    x = _bottleneck(x, "4b", 64, 256, projection=True, lensblur=True)
    x = _bottleneck(x, "4c", 64, 256, lensblur=True)
    k = _conv(x, 31, 1, "output", use_bias=True, act="relu")
    k = NormalizeKernel(name="kernel_norm")(k)
    return keras.Model([image, signed], k, name=name)


def build_feature_net(name="Feature"):
    """FeaNet: BGR image -> 93 channels (image + 30 candidate layers, channel 3 j + c)."""
    image = keras.Input((None, None, 3), name="image")
    return keras.Model(image, _feature_convs(image), name=name)


def build_sr_net(name="SR"):
    """SRNet: (image_lo, dof_lo, depth_signed_lo, image_hi) -> {"dof", "weights", "dof_up"} at hi size."""
    image_lo = keras.Input((None, None, 3), name="image_lo")
    dof_lo = keras.Input((None, None, 3), name="dof_lo")
    signed_lo = keras.Input((None, None, 1), name="depth_signed_lo")
    hr = keras.Input((None, None, 3), name="image_hi")

    dof_up = Uint8Quantize(name="dof_uint8")(dof_lo)
    dof_up = ResizeLike(name="dof_up_resize")([dof_up, hr])
    dof_up = keras.layers.Rescaling(1.0 / 255.0, name="dof_up")(dof_up)

    lr = keras.layers.Concatenate(name="lr_concat")([image_lo, dof_lo, signed_lo])
    l1 = _conv_bn(lr, 32, 3, "lr1_1", "lr1_1_bn", "relu")
    l2 = _conv_bn(l1, 64, 3, "lr2_1", "lr2_1_bn", "relu", strides=2)
    l3 = _conv_bn(l2, 128, 3, "lr3_1", "lr3_1_bn", "relu", strides=2)
    x = _conv_bn(l3, 256, 3, "lr4_1", "lr4_1_bn", "relu", strides=2)
    x = _conv_bn(x, 256, 3, "lr4_2", "lr4_2_bn", "relu")
    for conv, skip, filters in (("lr5_1", l3, 128), ("lr6_1", l2, 64), ("lr7_1", l1, 32)):
        x = _conv_bn(x, filters, 3, conv, f"{conv}_bn", "relu")
        x = ResizeLike(name=f"{conv}_up")([x, skip])
        x = keras.layers.Add(name=f"{conv}_add")([x, skip])
    x = _conv_bn(x, 32, 3, "lr8_1", "lr8_1_bn", "relu")
    x = ResizeLike(name="lr8_1_up")([x, hr])  # the exact size of hr, not x2 (odd sizes)
    x = _conv_bn(x, 32, 3, "lr9_1", "lr9_1_bn", "relu")

    w = keras.layers.Concatenate(name="pre_concat")([hr, x])
    for i in range(1, 5):
        w = _conv_bn(w, 32, 3, f"pre1_{i}", f"pre1_{i}_bn", "relu")
    w = _conv(w, 32, 3, "pre1_5", use_bias=True, act="relu")
    w = NormalizeKernel(name="weights_norm")(w)

    fea0 = keras.layers.Concatenate(name="fea0")([dof_up, hr])
    dof = ApplyKernel(name="combine")([w, _feature_convs(fea0)])
    return keras.Model(
        [image_lo, dof_lo, signed_lo, hr], {"dof": dof, "weights": w, "dof_up": dof_up}, name=name
    )


@keras.saving.register_keras_serializable(package="pynet_bokeh")
class DeepLens(keras.Model):
    """The four DeepLens modules (`depth_net`, `lensblur_net`, `feature_net`, `sr_net`).

    A container (its weights are the modules'): run it with `deeplens_forward` (explicit
    pyramid) or `render_deeplens` (a photo), or build one functional model of the whole graph
    with `build_deeplens_graph` / `deeplens_export_function`.
    """

    def __init__(self, name="deeplens", **kwargs):
        super().__init__(name=name, **kwargs)
        self.depth_net = build_depth_net()
        self.lensblur_net = build_lensblur_net()
        self.feature_net = build_feature_net()
        self.sr_net = build_sr_net()
        self.combine = ApplyKernel(name="combine")
        self.built = True


def build_deeplens():
    """A DeepLens with freshly initialised weights (load the authors' with `load_deeplens_checkpoint`)."""
    return DeepLens()


# ----------------------------------------------------------------------------- checkpoint I/O
class DeepLensCheckpointError(ValueError):
    """The checkpoint does not fit DeepLens (missing variable, wrong shape)."""


_CONV_VARS = ("weights", "biases")
_BN_VARS = ("gamma", "beta", "moving_mean", "moving_variance")


def checkpoint_variables(model):
    """{TF1 variable name: keras variable} for every weight of the four modules."""
    out = {}
    for attr, scope in SCOPES.items():
        for layer in getattr(model, attr).layers:
            if isinstance(layer, keras.layers.Conv2D):
                names = _CONV_VARS[: len(layer.weights)]
            elif isinstance(layer, keras.layers.BatchNormalization):
                names = _BN_VARS
            else:
                continue
            for var_name, var in zip(names, layer.weights, strict=True):
                out[f"Network/Network/{scope}/{layer.name}/{var_name}"] = var
    return out


def resolve_checkpoint(prefix):
    """The checkpoint prefix (accepts PREFIX, PREFIX.index, a folder), or FileNotFoundError."""
    from pynet_bokeh.convert.tf1 import resolve_prefix

    try:
        return resolve_prefix(prefix)
    except FileNotFoundError:
        raise FileNotFoundError(
            f"DeepLens checkpoint not found at {str(prefix)!r}: pass the prefix of the authors' "
            "release (scott89/deeplens_eval, model/model_end2end/model), i.e. the path before "
            ".index / .data-00000-of-00001, both files side by side."
        ) from None


def resolve_weights(path):
    """A TF1 checkpoint prefix, or a trainer's `.weights.h5` (a stage folder gives its
    `final.weights.h5`); FileNotFoundError saying what to pass when neither exists."""
    path = os.fspath(path)
    if os.path.isdir(path) and os.path.isfile(os.path.join(path, "final.weights.h5")):
        path = os.path.join(path, "final.weights.h5")
    if path.endswith(".weights.h5"):
        if not os.path.isfile(path):
            raise FileNotFoundError(f"DeepLens weights file not found: {path!r}.")
        return path
    return resolve_checkpoint(path)


def is_deeplens_tf1_checkpoint(path):
    """True when `path` resolves to a TF checkpoint holding `Network/Network/...` variables."""
    try:
        prefix = resolve_checkpoint(path)
    except FileNotFoundError:
        return False
    return any(n.startswith("Network/Network/") for n, _ in tf.train.list_variables(prefix))


def load_deeplens_checkpoint(model, prefix):
    """Loads the authors' TF1 checkpoint (488 variables under `Network/Network/`) into `model`.

    Optimizer slots (`.../Adam`, `.../Adam_1`), beta powers and `global_step` are ignored.
    Raises `DeepLensCheckpointError` naming the variable when one is missing or has another shape;
    nothing is assigned unless every variable fits. Also accepts the trainer's weights
    (`<stage folder>/final.weights.h5`, or the folder), matched by module name.
    """
    path = resolve_weights(prefix)
    if path.endswith(".weights.h5"):
        from pynet_bokeh.training.checkpointing import load_weights_by_name

        load_weights_by_name(model, path)
        return model
    prefix = path
    reader = tf.train.load_checkpoint(prefix)
    shapes = reader.get_variable_to_shape_map()
    wanted = checkpoint_variables(model)
    missing = [n for n in wanted if n not in shapes]
    if len(missing) == len(wanted):
        raise DeepLensCheckpointError(
            f"{prefix!r} holds none of the {len(wanted)} DeepLens variables "
            "(Network/Network/{Depth,Lensblur,Feature,SR}/...): is it a DeepLens checkpoint?"
        )
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise DeepLensCheckpointError(
            f"variable {missing[0]!r} is missing from checkpoint {prefix!r}{more}; "
            "expected the layout of model/model_end2end/model from scott89/deeplens_eval."
        )
    for name, var in wanted.items():
        if tuple(shapes[name]) != tuple(var.shape):
            raise DeepLensCheckpointError(
                f"variable {name!r} in {prefix!r} has shape {list(shapes[name])}, "
                f"DeepLens expects {list(var.shape)}."
            )
    for name, var in wanted.items():
        var.assign(reader.get_tensor(name).astype(np.float32))
    return model


def save_deeplens_checkpoint(model, prefix):
    """Writes the 488 variables in the release's layout (a TF V2 bundle the original code restores)."""
    import tempfile

    prefix = os.fspath(prefix)
    folder = os.path.dirname(os.path.abspath(prefix))
    os.makedirs(folder, exist_ok=True)
    tensors = {n: v.numpy() for n, v in checkpoint_variables(model).items()}
    names = sorted(tensors)
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        tmp_prefix = os.path.join(tmp, "model")
        tf.raw_ops.SaveV2(
            prefix=tmp_prefix,
            tensor_names=names,
            shape_and_slices=[""] * len(names),
            tensors=[tf.constant(tensors[n]) for n in names],
        )
        os.replace(tmp_prefix + ".data-00000-of-00001", prefix + ".data-00000-of-00001")
        os.replace(tmp_prefix + ".index", prefix + ".index")
    return prefix


# ----------------------------------------------------------------------------- hand-set weights
def _identity_bn(layer):
    gamma, beta, mean, var = (w.numpy() for w in layer.weights)
    # var + eps == 1: inference BN is the identity (plus beta).
    layer.set_weights([np.ones_like(gamma), beta * 0, mean * 0, var * 0 + (1.0 - BN_EPSILON)])


def _set(layer, fill):
    """Zero weights (identity BN), then `fill(kernel, bias_or_None)` edits numpy arrays in place."""
    if isinstance(layer, keras.layers.BatchNormalization):
        _identity_bn(layer)
        return
    ws = [np.zeros(w.shape, np.float32) for w in layer.weights]
    if fill is not None:
        fill(*ws) if len(ws) == 2 else fill(ws[0], None)
    layer.set_weights(ws)


def init_layered_blur(model, blur_per_unit=8.0):
    """Hand-set Lensblur, Feature and SR weights: a layered-blur renderer, no learning involved.

    FeaNet candidates become box blurs of radius 1 (j = 1..10), 3 (11..20), 5 (21..25) and
    7 (26..30) of the image; KernelNet picks candidate 0, 1, 11, 21, 26 by hat functions of
    t = blur_per_unit * |depth_signed| (t = 0: the sharp image, exactly; t >= 4: radius 7);
    SRNet blends the sharp high-resolution image (weight max(1 - t, 0)) with the upsampled DoF
    (min(t, 1)). So aperture 0 returns the photo and the blur grows with |d - d_f| * aperture:
    the semantics the trained model should have, with weights whose answer is known (tests, demos,
    and a sane starting point for training). The depth network is left as it is.
    """
    c = float(blur_per_unit)
    lens, fea, sr = model.lensblur_net, model.feature_net, model.sr_net
    for net in (lens, fea, sr):
        for layer in net.layers:
            if layer.weights:
                _set(layer, None)

    # Box blurs, colour by colour (fea1 output 3 (j - 1) + c reads colour c); SR's own feature
    # convs stay zero: it only blends its candidates 0 and 1.
    for name, kernel_size, cout in (
        ("fea1", 3, 30),
        ("fea2", 5, 30),
        ("fea3", 5, 15),
        ("fea4", 5, 15),
    ):

        def fill(kernel, bias, kernel_size=kernel_size, cout=cout, first=name == "fea1"):
            for o in range(cout):
                kernel[:, :, o % 3 if first else o, o] = 1.0 / kernel_size**2

        _set(fea.get_layer(name), fill)

    # KernelNet: shallow channels u_{k,+-} = relu(+-c s - k), k = 0..4; ramps r_k = u_{k,+} + u_{k,-}.
    def shallow(kernel, bias):
        for k in range(5):
            kernel[3, 3, 3, 2 * k] = c
            kernel[3, 3, 3, 2 * k + 1] = -c

    _set(lens.get_layer("conv1_shallow"), shallow)
    bn = lens.get_layer("bn1_shallow")
    beta = np.zeros(64, np.float32)
    beta[:10] = -np.repeat(np.arange(5, dtype=np.float32), 2)
    bn.set_weights([*bn.get_weights()[:1], beta, *bn.get_weights()[2:]])
    for name, offset in (("res4a_branch1", 256), ("res4b_branch1", 0)):

        def route(kernel, bias, offset=offset):
            for m in range(10):
                kernel[0, 0, offset + m, m] = 1.0

        _set(lens.get_layer(name), route)

    def hats(kernel, bias):
        def ramp(k, coef, j):
            kernel[0, 0, 2 * k, j] += coef
            kernel[0, 0, 2 * k + 1, j] += coef

        bias[0] = 1.0
        ramp(0, -1, 0)
        ramp(1, 1, 0)
        for level, j in ((1, 1), (2, 11), (3, 21)):
            ramp(level - 1, 1, j)
            ramp(level, -2, j)
            ramp(level + 1, 1, j)
        ramp(3, 1, 26)
        ramp(4, -1, 26)

    _set(lens.get_layer("output"), hats)

    # SRNet: v = relu(c s), relu(-c s), relu(c s - 1), relu(-c s - 1) carried to high resolution.
    def lr1(kernel, bias):
        for i, sign in enumerate((1, -1, 1, -1)):
            kernel[1, 1, 6, i] = sign * c

    _set(sr.get_layer("lr1_1"), lr1)
    bn = sr.get_layer("lr1_1_bn")
    beta = np.zeros(32, np.float32)
    beta[2:4] = -1.0
    bn.set_weights([*bn.get_weights()[:1], beta, *bn.get_weights()[2:]])
    for name, offset in (
        ("lr8_1", 0),
        ("lr9_1", 0),
        ("pre1_1", 3),
        ("pre1_2", 0),
        ("pre1_3", 0),
        ("pre1_4", 0),
    ):

        def carry(kernel, bias, offset=offset):
            for i in range(4):
                kernel[1, 1, offset + i, i] = 1.0

        _set(sr.get_layer(name), carry)

    def blend(kernel, bias):
        bias[1] = 1.0
        for i, coef in enumerate((1, 1, -1, -1)):
            kernel[1, 1, i, 0] = coef  # min(t, 1): the upsampled DoF
            kernel[1, 1, i, 1] = -coef  # max(1 - t, 0): the sharp high-resolution image

    _set(sr.get_layer("pre1_5"), blend)
    return model


# ----------------------------------------------------------------------------- the graph
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


# ----------------------------------------------------------------------------- export
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


# ----------------------------------------------------------------------------- photos
def _area_half(img):
    import cv2

    h, w = img.shape[:2]
    return cv2.resize(img, (w // 2, h // 2), interpolation=cv2.INTER_AREA)


def deeplens_pyramid(photo):
    """The evaluator's preprocessing: (capped photo, [image_320, image_640?, image_1280?], scale).

    The long side is capped at 1280 (INTER_AREA, other side `dim * 1280 // L`); scale 4 when the
    capped long side is 1280, 2 when it is >= 640, else 1. Lower levels are INTER_AREA halvings.
    """
    import cv2

    photo = np.asarray(photo, np.float32)
    if photo.ndim != 3 or photo.shape[2] != 3:
        raise ValueError(f"photo must be an H x W x 3 RGB array, got shape {photo.shape}.")
    h, w = photo.shape[:2]
    long_side = max(h, w)
    if long_side > MAX_SIDE:
        size = (w * MAX_SIDE // long_side, h * MAX_SIDE // long_side)
        photo = cv2.resize(photo, size, interpolation=cv2.INTER_AREA)
        long_side = MAX_SIDE
    scale = 4 if long_side >= MAX_SIDE else 2 if long_side >= MAX_SIDE // 2 else 1
    levels = [photo]
    for _ in range(scale.bit_length() - 1):
        levels.insert(0, _area_half(levels[0]))
    if min(levels[0].shape[:2]) < 8:
        raise ValueError(
            f"photo of {w} x {h} pixels is too small for DeepLens: its working image would be "
            f"{levels[0].shape[1]} x {levels[0].shape[0]} (at least 8 pixels a side needed)."
        )
    return photo, levels, scale


def render_deeplens(model, photo, focus_xy=None, aperture=0.5, depth=None, focus_depth=None):
    """Shallow depth of field for one RGB photo in [0, 1]: returns (image, depth map).

    focus_xy: (x, y) in photo pixels (default: the centre), or focus_depth in [0, 1] (inverse
    depth of the plane to keep sharp) instead. aperture in [0, 1] (0 keeps everything sharp).
    depth: optional inverse depth (larger = nearer) in [0, 1], any size, used instead of the
    depth network. The image has the photo's size after the 1280 cap (float32, H x W x 3); the
    depth map (H' x W') the working image's size.
    """
    photo = np.asarray(photo, np.float32)
    capped, levels, scale = deeplens_pyramid(photo)
    lh, lw = levels[0].shape[:2]
    if depth is not None:
        depth = np.asarray(depth, np.float32)
        depth = depth[..., 0] if depth.ndim == 3 else depth
        depth = legacy_bilinear_resize(depth[None, ..., None], lh, lw)
    focus = None
    if focus_depth is None:
        ratio = capped.shape[1] / photo.shape[1]
        if focus_xy is None:
            fx, fy = capped.shape[1] // 2, capped.shape[0] // 2
        else:
            x, y = focus_xy
            if not (0 <= x < photo.shape[1] and 0 <= y < photo.shape[0]):
                raise ValueError(
                    f"focus point {tuple(focus_xy)} lies outside the photo "
                    f"({photo.shape[1]} x {photo.shape[0]} pixels)."
                )
            fx, fy = int(x * ratio), int(y * ratio)
        focus = (min(fx // scale, lw - 1), min(fy // scale, lh - 1))
    pyramid = dict(zip(("image_320", "image_640", "image_1280"), levels, strict=False))
    out = deeplens_forward(
        model, focus_xy=focus, aperture=aperture, depth=depth, focus_depth=focus_depth, **pyramid
    )
    return out[f"dof_{320 * scale}"].numpy(), out["depth"][..., 0].numpy()
