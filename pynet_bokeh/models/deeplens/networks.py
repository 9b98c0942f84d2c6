"""DeepLens' four modules (Depth, Lensblur, Feature, SR) as functional Keras models, with the
original layer names, and the `DeepLens` container holding them."""

import keras

from pynet_bokeh.models.deeplens_layers import (
    ApplyKernel,
    LegacyBilinearResize,
    MinMaxNormalize,
    NormalizeKernel,
    ResizeLike,
    SymmetricPad,
    Uint8Quantize,
)

DEPTH_SIZE = 320
# tf.layers.batch_normalization says 1e-5; TF 1.8's fused kernel raised it to 1.001e-5.
BN_EPSILON = 1.001e-5
BN_MOMENTUM = 0.99
LRELU_SLOPE = 0.2
MAX_SIDE = 1280
#: DeepLens' aperture A = 1 means a blur radius of this fraction of the photo's long side per unit
#: of depth-map value (16 px at the 320 working size, the proto's `aperture_radius: 16`); so the
#: shared blur control K (pixels at the photo's size) is A * APERTURE_RADIUS_FRACTION * max(H, W).
APERTURE_RADIUS_FRACTION = 0.05
COMPILE_PIXELS = 500_000
SCOPES = {
    "depth_net": "Depth",
    "lensblur_net": "Lensblur",
    "feature_net": "Feature",
    "sr_net": "SR",
}


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
