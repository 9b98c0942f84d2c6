"""PyNET-Bokeh (Ignatov, Patel, Timofte, CVPRW 2020) as a Keras 3 functional model.

The graph follows `shared/specs/pynet.md` exactly. Levels are numbered as in the paper: level 1
is the full-size output (2x the input), level 7 the coarsest (input / 32). Layer names say where a
layer sits: `level5_mb3_conv5b` is level 5, multi-block 3, the 5x5 branch, second conv.
"""

import keras

from pynet_bokeh.models.layers import ScaledTanh, SpaceToDepth

LEVELS = (1, 2, 3, 4, 5, 6, 7)

#: Input channels of the controllable model: RGB, depth, signed defocus map.
CONTROLLABLE_CHANNELS = 5
#: Default K_max (pixels at full resolution): the blur K whose signed defocus map reaches +-1
#: one unit of disparity from the focal plane; c = clip((d - d_f) * K / K_max, -1, 1).
DEFAULT_DEFOCUS_K_MAX = 64.0
#: Layers that read the network input (through space_to_depth).
INPUT_LAYERS = ("level3_enc_conv3a",)
SPACE_TO_DEPTH_BLOCK = 2
#: Layers whose outputs inference computes again at each use instead of keeping them
#: (`grouped_forward`): level 3's encoder, two 3 x 3 convolutions on the input that five blocks
#: use, far apart; recomputing it costs ~1% of the forward pass and frees its 32-channel map
#: (12.6 MB at a 512 x 768 input) through level 3's widest blocks.
INFERENCE_RECOMPUTE = (
    "space_to_depth",
    "level3_enc_conv3a",
    "level3_enc_conv3a_act",
    "level3_enc_conv3b",
    "level3_enc_conv3b_act",
)


def check_level(level) -> int:
    """Returns `level` as an int, or raises ValueError if it is not 1..7."""
    if isinstance(level, bool) or int(level) != level or int(level) not in LEVELS:
        raise ValueError(f"level must be one of 1..7 (7 = coarsest, trained first), got {level!r}")
    return int(level)


def level_scale(level):
    """Output size / input size of a level: 2 for level 1, 1 for level 2, ... 1/32 for level 7."""
    return 2.0 / 2 ** (level - 1)


class _GraphBuilder:
    """Creates PyNET's layers in the authors' graph-creation order and records that order.

    The TF1 checkpoint numbers its variables by creation order, so `tf1_order` (layer names, in
    order) is what `load_tf1_checkpoint` walks.
    """

    def __init__(self, instance_norm, instance_norm_level_1):
        self.instance_norm = instance_norm
        self.nl1 = instance_norm_level_1
        self.tf1_order = []

    def _kernel_init(self):
        return keras.initializers.TruncatedNormal(stddev=0.01)

    def conv(self, x, filters, kernel, norm, act, name):
        layer = keras.layers.Conv2D(
            filters,
            kernel,
            padding="same",
            kernel_initializer=self._kernel_init(),
            bias_initializer=keras.initializers.Constant(0.01),
            name=name,
        )
        self.tf1_order.append(name)
        x = layer(x)
        if norm:
            norm_name = name.replace("conv", "norm", 1) if "conv" in name else name + "_norm"
            x = keras.layers.GroupNormalization(groups=-1, epsilon=1e-3, name=norm_name)(x)
            self.tf1_order.append(norm_name)
        if act:
            x = keras.layers.LeakyReLU(negative_slope=0.2, name=name + "_act")(x)
        return x

    def multi_block(self, x, kmax, filters, norm, name):
        """Parallel 3/5/7/9 branches (k <= kmax) of two activated convs, concatenated."""
        norm = norm and self.instance_norm
        branches = []
        for k in (3, 5, 7, 9):
            if k > kmax:
                break
            y = self.conv(x, filters, k, norm, True, f"{name}_conv{k}a")
            y = self.conv(y, filters, k, norm, True, f"{name}_conv{k}b")
            branches.append(y)
        if len(branches) == 1:
            return branches[0]
        return keras.layers.Concatenate(name=f"{name}_concat")(branches)

    def up(self, x, filters, name):
        layer = keras.layers.Conv2DTranspose(
            filters,
            3,
            strides=2,
            padding="same",
            use_bias=False,
            kernel_initializer=self._kernel_init(),
            name=name,
        )
        self.tf1_order.append(name)
        return keras.layers.LeakyReLU(negative_slope=0.2, name=name + "_act")(layer(x))

    def head(self, x, name):
        logits = self.conv(x, 3, 3, norm=False, act=False, name=f"{name}_logits")
        return logits, ScaledTanh(name=f"{name}_output")(logits)


def _add(name, *xs):
    return keras.layers.Add(name=name)(list(xs))


def _cat(name, *xs):
    return keras.layers.Concatenate(name=name)(list(xs))


def _pool(name, x):
    return keras.layers.MaxPooling2D(2, strides=2, padding="valid", name=name)(x)


@keras.saving.register_keras_serializable(package="pynet_bokeh")
class PyNET(keras.Model):
    """PyNET-Bokeh: input N x H x W x C (RGB + depth in [0, 1]), outputs {"level1": ...}.

    H and W must be multiples of 32. 47,551,791 parameters with the default options.

    Args:
        input_channels: 4 for RGB + depth (the EBB! setting), 3 for RGB only, 5 for the
            controllable model (RGB, depth, signed defocus map `c`, see `defocus_k_max`).
        defocus_k_max: only with 5 channels: the K_max of c = clip((d - d_f) * K / K_max,
            -1, 1) (default `DEFAULT_DEFOCUS_K_MAX`), recorded so inputs are made the same way.
        instance_norm: instance normalisation in the normed blocks (as the authors).
        instance_norm_level_1: instance norm also in level 3's 9x9 blocks (the authors'
            `instance_norm_level_1` switch, off in their release).
    """

    def __init__(
        self,
        input_channels=4,
        instance_norm=True,
        instance_norm_level_1=False,
        defocus_k_max=None,
        **kwargs,
    ):
        if input_channels == CONTROLLABLE_CHANNELS:
            defocus_k_max = float(defocus_k_max or DEFAULT_DEFOCUS_K_MAX)
            if not defocus_k_max > 0:
                raise ValueError(f"defocus_k_max must be > 0, got {defocus_k_max}")
        elif defocus_k_max is not None:
            raise ValueError(
                f"defocus_k_max is for the 5-channel controllable model, not {input_channels} "
                "input channels"
            )
        g = _GraphBuilder(instance_norm, instance_norm_level_1)
        mb = g.multi_block
        x = keras.Input((None, None, input_channels), name="image_depth")
        s = SpaceToDepth(SPACE_TO_DEPTH_BLOCK, name="space_to_depth")(x)

        e1 = mb(s, 3, 32, False, "level3_enc")
        e2 = mb(_pool("level3_pool", e1), 3, 64, True, "level4_enc")
        e3 = mb(_pool("level4_pool", e2), 3, 128, True, "level5_enc")
        e4 = mb(_pool("level5_pool", e3), 3, 256, True, "level6_enc")
        p4 = _pool("level6_pool", e4)

        # Level 7 (H/32).
        a1 = mb(p4, 3, 512, True, "level7_mb1")
        a2 = _add("level7_mb2_add", mb(a1, 3, 512, True, "level7_mb2"), a1)
        a3 = _add("level7_mb3_add", mb(a2, 3, 512, True, "level7_mb3"), a2)
        a4 = mb(a3, 3, 512, True, "level7_mb4")
        t7a = g.up(a4, 256, "level7_up_a")
        t7b = g.up(a4, 256, "level7_up_b")
        _, out7 = g.head(a4, "level7")

        # Level 6 (H/16).
        b2 = _cat("level6_cat1", e4, t7a)
        b3 = mb(b2, 3, 256, True, "level6_mb1")
        b4 = _add("level6_mb2_add", mb(b3, 3, 256, True, "level6_mb2"), b3)
        b5 = _add("level6_mb3_add", mb(b4, 3, 256, True, "level6_mb3"), b4)
        b6 = _cat("level6_cat2", mb(b5, 3, 256, True, "level6_mb4"), t7b)
        b7 = mb(b6, 3, 256, True, "level6_mb5")
        t6a = g.up(b7, 128, "level6_up_a")
        t6b = g.up(b7, 128, "level6_up_b")
        _, out6 = g.head(b7, "level6")

        # Level 5 (H/8).
        c2 = _cat("level5_cat1", e3, t6a)
        c3 = _add("level5_mb1_add", mb(c2, 5, 128, True, "level5_mb1"), c2)
        c4 = _add("level5_mb2_add", mb(c3, 5, 128, True, "level5_mb2"), c3)
        c5 = _add("level5_mb3_add", mb(c4, 5, 128, True, "level5_mb3"), c4)
        c6 = _cat("level5_cat2", mb(c5, 5, 128, True, "level5_mb4"), e3)
        c7 = _cat("level5_cat3", c6, t6b)
        c8 = mb(c7, 3, 128, True, "level5_mb5")
        t5a = g.up(c8, 64, "level5_up_a")
        t5b = g.up(c8, 64, "level5_up_b")
        _, out5 = g.head(c8, "level5")

        # Level 4 (H/4).
        d2 = _cat("level4_cat1", e2, t5a)
        d3 = _cat("level4_cat2", mb(d2, 5, 64, True, "level4_mb1"), e2)
        d4 = _add("level4_mb2_add", mb(d3, 7, 64, True, "level4_mb2"), d3)
        d5 = _add("level4_mb3_add", mb(d4, 7, 64, True, "level4_mb3"), d4)
        d6 = _add("level4_mb4_add", mb(d5, 7, 64, True, "level4_mb4"), d5)
        d7 = _cat("level4_cat3", mb(d6, 7, 64, True, "level4_mb5"), e2)
        d8 = _cat("level4_cat4", mb(d7, 5, 64, True, "level4_mb6"), t5b)
        d9 = mb(d8, 3, 64, True, "level4_mb7")
        t4a = g.up(d9, 32, "level4_up_a")
        t4b = g.up(d9, 32, "level4_up_b")
        _, out4 = g.head(d9, "level4")

        # Level 3 (H/2).
        nl1 = instance_norm_level_1
        f2 = _cat("level3_cat1", e1, t4a)
        f3 = _cat("level3_cat2", mb(f2, 5, 32, False, "level3_mb1"), e1)
        f4 = mb(f3, 7, 32, False, "level3_mb2")
        f5 = mb(f4, 9, 32, nl1, "level3_mb3")
        f6 = _add("level3_mb4_add", mb(f5, 9, 32, nl1, "level3_mb4"), f5)
        f7 = _add("level3_mb5_add", mb(f6, 9, 32, nl1, "level3_mb5"), f6)
        f8 = _add("level3_mb6_add", mb(f7, 9, 32, nl1, "level3_mb6"), f7)
        f9 = _cat("level3_cat3", mb(f8, 7, 32, False, "level3_mb7"), e1)
        f10 = _cat("level3_cat4", mb(f9, 5, 32, False, "level3_mb8"), t4b)
        f11 = _cat("level3_cat5", f10, e1)
        f12 = mb(f11, 3, 32, False, "level3_mb9")
        _, out3 = g.head(f12, "level3")

        # Level 2 (H) and level 1 (2H); level 1 upsamples level 2's logits, not its output.
        g2 = g.up(f12, 8, "level2_up")
        logits2, out2 = g.head(g2, "level2")
        u = g.up(logits2, 3, "level1_up")
        _, out1 = g.head(u, "level1")

        outputs = {
            "level1": out1,
            "level2": out2,
            "level3": out3,
            "level4": out4,
            "level5": out5,
            "level6": out6,
            "level7": out7,
        }
        super().__init__(inputs=x, outputs=outputs, **kwargs)
        self.input_channels = input_channels
        self.instance_norm = instance_norm
        self.instance_norm_level_1 = instance_norm_level_1
        self.defocus_k_max = defocus_k_max
        self.input_layer_names = INPUT_LAYERS
        self.tf1_order = tuple(g.tf1_order)

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "input_channels": self.input_channels,
            "instance_norm": self.instance_norm,
            "instance_norm_level_1": self.instance_norm_level_1,
            "defocus_k_max": self.defocus_k_max,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def build_pynet(
    input_channels=4,
    instance_norm=True,
    instance_norm_level_1=False,
    name="pynet",
    defocus_k_max=None,
):
    """Builds PyNET-Bokeh; see `PyNET`. Returns a keras.Model with outputs level1 ... level7.

    `input_channels=5` is the controllable model (RGB, depth, signed defocus map)."""
    return PyNET(
        input_channels=input_channels,
        instance_norm=instance_norm,
        instance_norm_level_1=instance_norm_level_1,
        defocus_k_max=defocus_k_max,
        name=name,
    )


def level_model(model, level):
    """A single-output model for `level` that shares its layers (and weights) with `model`."""
    if level not in LEVELS:
        raise ValueError(f"level must be one of {LEVELS}, got {level!r}")
    key = f"level{level}"
    return keras.Model(model.input, model.output[key], name=f"{model.name}_{key}")
