"""BRADCN (Liu, Zhou, Dong 2023, "Bokeh Rendering Based on Adaptive Depth Calibration Network")
in Keras 3, on the DPT port of ``pynet_bokeh.models.dpt``.

There is no public code: this follows ``shared/specs/bradcn.md``. Where the paper is silent the
spec's [R] readings are used, and each is marked "[R]" below.

    model = build_bradcn("tiny")                 # or "paper"; keyword overrides for any knob
    out = model(rgb01)                           # dict: bokeh (N,H,W,3), depth, depth_error
    load_bradcn_weights(model, render="BRViT_53_0.pt", depth="dpt_hybrid_nyu-2ce69ec7.pt")

One flat functional model (weights move by layer name, as everywhere in the project): the
Render Net's DPT layers are named ``render_<dpt name>`` (``render_block3_attn_qkv``), the depth
net's ``depth_<dpt name>``, ADCN's ``adcn_*``, the Adap convs ``adap_d`` / ``adap_e``.

Data flow (RGB in [0, 1], H and W multiples of 32):
- Depth Prediction Net (``depth_*`` layers, a DPT with the depth head): input (x - 0.5)/0.5 at the
  render resolution [R]; ``Do = 1/max(0.000305 y + 0.1378, 1e-8)`` metres (DPT-NYU), and
  ``Do_n = Do / depth_max`` in (0, 1] [R]. Trainable in stage 2 (the paper fine-tunes it).
- ADCN (``adcn_*`` layers, a U-Net [P]; its layers are [R]): ``concat[RGB, Do_n]`` -> ``De_n``, the
  absolute depth error |Do - Dgt| / depth_max. Frozen in stage 2 [R] (EBB! has no GT depth).
- Adap [P]: one 3x3 conv to 3 channels per map, separate ``adap_d`` / ``adap_e`` [R].
- Injection [R]: "Reassemble(Adap(D))" is read as the Render Net's own encoder applied to the
  3-channel adapted map: ``DI_k = E_r(x)_k + E_r(Adap_d(Do_n))_k + E_r(Adap_e(De_n))_k``, k = 1..4
  (``inject_encoder="shared"``, one batched pass); ``"separate"`` uses encoder copies and
  ``"light"`` (CPU) an average pool to each level plus a 3x3 conv to F channels.
- Render Net (BRViT: DPT encoder + decoder + 3-channel render head): input RGB in [0, 1] with no
  normalisation, as BRViT feeds it; output the bokeh image (image range, not clamped).
``inject_depth=False`` drops the Do term, ``inject_error=False`` the De term (the paper's
"Render Net with depth" ablation); both False is BRViT.
"""

import keras
from keras import ops

from pynet_bokeh.models.dpt import (
    assign_dpt_weights,
    dpt_config,
    dpt_decoder,
    dpt_encoder,
)
from pynet_bokeh.models.dpt_layers import PACKAGE, NyuMetricDepth
from pynet_bokeh.weights.keras_h5 import load_weights_by_name
from pynet_bokeh.weights.torch_file import load_torch_file

#: Spec section 1. ``render`` / ``depth`` name DPT configs (``dpt.DPT_CONFIGS``).
BRADCN_CONFIGS = {
    "paper": dict(
        img_hw=(512, 768),
        render="vitb_rn50_384",
        depth="vitb_rn50_384",
        inject_encoder="shared",
        inject_depth=True,
        inject_error=True,
        adcn_base=64,
        adcn_levels=4,
        adcn_in="rgb+depth",
        depth_max=1.0 / 0.1378,
        freeze_depth=False,
        freeze_adcn=True,
    ),
}
BRADCN_CONFIGS["tiny"] = dict(
    BRADCN_CONFIGS["paper"],
    img_hw=(64, 96),
    render="tiny",
    depth="tiny",
    adcn_base=8,
    adcn_levels=2,
)
INJECT_MODES = ("shared", "separate", "light")


def bradcn_config(config="paper", **overrides):
    """The knob dict of a named configuration with ``overrides`` applied (unknown refused)."""
    if config not in BRADCN_CONFIGS:
        raise ValueError(f"config={config!r}: expected one of {sorted(BRADCN_CONFIGS)}")
    cfg = dict(BRADCN_CONFIGS[config])
    unknown = set(overrides) - set(cfg)
    if unknown:
        raise ValueError(f"unknown BRADCN config knobs {sorted(unknown)}; known: {sorted(cfg)}")
    cfg.update(overrides)
    if cfg["inject_encoder"] not in INJECT_MODES:
        raise ValueError(
            f"inject_encoder={cfg['inject_encoder']!r}: expected one of {INJECT_MODES}"
        )
    if cfg["adcn_in"] not in ("rgb+depth", "rgb"):
        raise ValueError(f"adcn_in={cfg['adcn_in']!r}: expected 'rgb+depth' or 'rgb'")
    return cfg


@keras.saving.register_keras_serializable(package=PACKAGE)
class BatchConcat(keras.layers.Layer):
    """Stack same-shaped NHWC tensors along the batch axis (one encoder pass for all terms)."""

    def call(self, inputs):
        return ops.concatenate(inputs, axis=0)

    def compute_output_shape(self, input_shapes):
        n = input_shapes[0][0]
        return (None if n is None else n * len(input_shapes), *input_shapes[0][1:])


@keras.saving.register_keras_serializable(package=PACKAGE)
class BatchChunkSum(keras.layers.Layer):
    """Inverse of ``BatchConcat`` followed by a sum: (k*N, ...) -> (N, ...), sum of the k parts."""

    def __init__(self, chunks, **kwargs):
        super().__init__(**kwargs)
        self.chunks = int(chunks)

    def call(self, x):
        shape = ops.shape(x)
        dims = [d if d is not None else shape[i] for i, d in enumerate(x.shape) if i]
        return ops.sum(ops.reshape(x, (self.chunks, -1, *dims)), axis=0)

    def compute_output_shape(self, input_shape):
        n = input_shape[0]
        return (None if n is None else n // self.chunks, *input_shape[1:])

    def get_config(self):
        return {**super().get_config(), "chunks": self.chunks}


def _double_conv(x, ch, name):
    """DC(c) = [3x3 conv, no bias -> BN (eps 1e-5, PyTorch momentum) -> ReLU] x 2 [R]."""
    for i in (1, 2):
        x = keras.layers.Conv2D(ch, 3, padding="same", use_bias=False, name=f"{name}_conv{i}")(x)
        x = keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name=f"{name}_bn{i}")(x)
        x = keras.layers.ReLU(name=f"{name}_relu{i}")(x)
    return x


def adcn(x, base=64, levels=4):
    """ADCN U-Net [P "based on U-Net"; layers R]: (N, H, W, C) -> De_n (N, H, W, 1) >= 0.

    Encoder DC(b), then ``levels`` x [max-pool 2 -> DC(2^i b)]; decoder per level transposed conv
    2x2/2 halving the channels -> concat[skip, up] -> DC; 1x1 conv + ReLU. H, W divisible by
    2^levels. ``paper`` (64, 4) has 31.0 M parameters.
    """
    skips = []
    for i in range(levels + 1):
        if i:
            x = keras.layers.MaxPooling2D(2, name=f"adcn_pool{i}")(x)
        x = _double_conv(x, base * 2**i, f"adcn_enc{i}")
        skips.append(x)
    for i in range(levels - 1, -1, -1):
        ch = base * 2**i
        x = keras.layers.Conv2DTranspose(ch, 2, strides=2, name=f"adcn_up{i}")(x)
        x = keras.layers.Concatenate(name=f"adcn_concat{i}")([skips[i], x])
        x = _double_conv(x, ch, f"adcn_dec{i}")
    x = keras.layers.Conv2D(1, 1, name="adcn_out")(x)
    return keras.layers.ReLU(name="adcn_out_relu")(x)


def build_adcn(base=64, levels=4, in_channels=4, name="adcn"):
    """ADCN alone as a model (see ``adcn``)."""
    inp = keras.Input((None, None, in_channels), name="adcn_input")
    return keras.Model(inp, adcn(inp, base, levels), name=name)


def _inject(maps, cfg, render_cfg, rgb):
    """E_r features with the adapted maps added (spec section 6, [R]); computes E_r(x) too."""
    mode, f = cfg["inject_encoder"], render_cfg["features"]
    if mode == "shared" and maps:
        stacked = BatchConcat(name="inject_batch")([rgb] + [z for _, z in maps])
        return [
            BatchChunkSum(1 + len(maps), name=f"inject_sum{k}")(e)
            for k, e in enumerate(dpt_encoder(stacked, render_cfg, prefix="render_"), start=1)
        ]
    terms = [dpt_encoder(rgb, render_cfg, prefix="render_")]
    if not maps:
        return terms[0]
    for tag, z in maps:
        if mode == "separate":
            terms.append(dpt_encoder(z, render_cfg, prefix=f"render_{tag}_"))
        else:  # light: levels at strides 4, 8, 16, 32
            terms.append(
                [
                    keras.layers.Conv2D(f, 3, padding="same", name=f"inject_{tag}_conv{k}")(
                        keras.layers.AveragePooling2D(2 ** (k + 1), name=f"inject_{tag}_pool{k}")(z)
                    )
                    for k in range(1, 5)
                ]
            )
    return [keras.layers.Add(name=f"inject_sum{k}")([t[k - 1] for t in terms]) for k in range(1, 5)]


def set_trainable(model, part, trainable):
    """(Un)freeze one part of a BRADCN model: ``render`` (incl. injection convs), ``depth``,
    ``adcn`` or ``adap``. Returns the number of layers with weights changed."""
    prefixes = {
        "render": ("render_", "inject_"),
        "depth": ("depth_",),
        "adcn": ("adcn_",),
        "adap": ("adap_",),
    }
    if part not in prefixes:
        raise ValueError(f"part={part!r}: expected one of {sorted(prefixes)}")
    changed = 0
    for layer in model.layers:
        if layer.name.startswith(prefixes[part]) and layer.weights:
            layer.trainable = trainable
            changed += 1
    return changed


def build_bradcn(config="paper", name="bradcn", **overrides):
    """BRADCN as a Keras model: input RGB in [0, 1] (N, H, W, 3), H and W multiples of 32;
    output dict ``bokeh`` (N, H, W, 3), ``depth`` (Do_n) and, with ADCN, ``depth_error`` (De_n).

    ``config`` is ``"paper"`` or ``"tiny"`` (spec section 1); overrides change single knobs, e.g.
    ``inject_encoder="light"``, ``inject_error=False``.
    """
    cfg = bradcn_config(config, **overrides)
    render_cfg = dpt_config(cfg["render"])
    rgb = keras.Input((None, None, 3), name="rgb")
    outputs, maps = {}, []
    if cfg["inject_depth"] or cfg["inject_error"]:
        depth_cfg = dpt_config(cfg["depth"])
        x = keras.layers.Rescaling(2.0, offset=-1.0, name="depth_input_norm")(rgb)
        y = dpt_decoder(
            dpt_encoder(x, depth_cfg, prefix="depth_"), depth_cfg, "depth", prefix="depth_"
        )
        do = NyuMetricDepth(name="depth_metric")(y)
        do_n = keras.layers.Rescaling(1.0 / cfg["depth_max"], name="depth_normalise")(do)
        outputs["depth"] = do_n
        if cfg["inject_depth"]:
            maps.append(("d", keras.layers.Conv2D(3, 3, padding="same", name="adap_d")(do_n)))
        if cfg["inject_error"]:
            x = rgb
            if cfg["adcn_in"] == "rgb+depth":
                x = keras.layers.Concatenate(name="adcn_rgbd")([rgb, do_n])
            de_n = adcn(x, cfg["adcn_base"], cfg["adcn_levels"])
            outputs["depth_error"] = de_n
            maps.append(("e", keras.layers.Conv2D(3, 3, padding="same", name="adap_e")(de_n)))
    feats = _inject(maps, cfg, render_cfg, rgb)
    bokeh = dpt_decoder(feats, render_cfg, "render", prefix="render_")
    model = keras.Model(rgb, {"bokeh": bokeh, **outputs}, name=name)
    set_trainable(model, "depth", not cfg["freeze_depth"])
    set_trainable(model, "adcn", not cfg["freeze_adcn"])
    return model


def adcn_stage_model(model):
    """Stage-1 view of a BRADCN model (shared layers): RGB -> concat[De_n, Do_n] (N, H, W, 2).

    One tensor, channel 0 the ADCN output, channel 1 the depth net's Do_n (the label is built
    from it). Freeze the depth net and unfreeze ADCN with ``set_trainable`` (``bradcn_task``
    does).
    """
    if "depth_error" not in model.output:
        raise ValueError(f"model {model.name!r} has no ADCN (built with inject_error=False?)")
    out = keras.layers.Concatenate(name="adcn_stage_output")(
        [model.output["depth_error"], model.output["depth"]]
    )
    return keras.Model(model.input, out, name=model.name + "_adcn_stage")


def render_stage_model(model):
    """Stage-2 view of a BRADCN model (shared layers): RGB -> bokeh (N, H, W, 3)."""
    return keras.Model(model.input, model.output["bokeh"], name=model.name + "_render_stage")


def load_bradcn_weights(model, render=None, depth=None):
    """Initialise from released checkpoints (spec section 9, [R] section 8):

    - ``render``: BRViT's ``BRViT_53_0.pt`` (3-channel head) or a DPT depth checkpoint (then all
      but the 1-channel last head conv ``scratch.output_conv.4`` is loaded); encoder copies of
      ``inject_encoder="separate"`` start from the same weights;
    - ``depth``: ``dpt_hybrid_nyu-2ce69ec7.pt`` into the Depth Prediction Net.
    Returns {"render": skipped keys, "depth": skipped keys} for the files given.
    """
    names = {layer.name for layer in model.layers}
    skipped = {}
    if render is not None:
        state = load_torch_file(render)
        head = state.get("scratch.output_conv.4.weight")
        skip = ("scratch.output_conv.4.",) if head is not None and head.shape[0] == 1 else ()
        skipped["render"] = assign_dpt_weights(
            model, state, source=str(render), skip=skip, prefix="render_"
        )
        for layer in model.layers:
            for tag in ("d", "e"):
                if layer.name.startswith(f"render_{tag}_") and layer.weights:
                    base = "render_" + layer.name[len(f"render_{tag}_") :]
                    layer.set_weights(model.get_layer(base).get_weights())
    if depth is not None:
        if "depth_head_conv4" not in names:
            raise ValueError(f"model {model.name!r} has no depth net (both injections disabled)")
        state = load_torch_file(depth)
        skipped["depth"] = assign_dpt_weights(model, state, source=str(depth), prefix="depth_")
    return skipped


def load_bradcn(weights, config="paper", **overrides):
    """A BRADCN model with the trainer's ``final.weights.h5`` (layers matched by name; the
    ``config`` and overrides must be those it was trained with)."""
    model = build_bradcn(config, **overrides)
    load_weights_by_name(model, weights)
    return model
