"""DPT (Ranftl et al., ICCV 2021) in Keras 3: hybrid R50+ViT-B/16 and plain ViT backbones.

A port of isl-org/DPT run with timm 0.4.5, as ``shared/specs/bradcn.md`` sections 2-3 specify;
it imports the released checkpoints (``dpt_hybrid-midas-501f0c75.pt``,
``dpt_hybrid_nyu-2ce69ec7.pt``, BRViT's ``BRViT_53_0.pt``) without torch:

    model = build_dpt("vitb_rn50_384", head="depth")
    load_dpt_checkpoint(model, "dpt_hybrid_nyu-2ce69ec7.pt")
    y = model((rgb01 - 0.5) / 0.5)          # N x H x W x 1; H, W multiples of 32

Layers are named by position (``resnet_s1_b0_conv2``, ``block8_attn_qkv``, ``reassemble4_conv3x3``,
``layer3_rn``, ``refinenet2_rcu1_conv1``, ``head_conv4``); ``dpt_stage_model`` taps the stages the
parity tests compare (``layer1..4``, ``layerK_rn``, ``path4..1``, ``head_raw``).
"""

import os

import keras
import numpy as np

from pynet_bokeh.errors import WeightsMismatchError
from pynet_bokeh.models.dpt_layers import (
    BilinearUpsample,
    ClassTokenPosEmbed,
    ReadoutConcat,
    SelfAttention,
    StdConv2D,
    TokensToGrid,
)
from pynet_bokeh.weights.torch_file import load_torch_file

_BASE = dict(
    hybrid=True,
    resnet_layers=(3, 4, 9),
    resnet_widths=(256, 512, 1024),
    resnet_stem=64,
    gn_groups=32,
    patch=16,
    embed_dim=768,
    depth=12,
    heads=12,
    mlp_ratio=4,
    hooks=(0, 1, 8, 11),
    reassemble_ch=(256, 512, 768, 768),
    features=256,
    head_hidden=32,
    pos_grid=(24, 24),
)

#: Named configurations. ``vitb_rn50_384`` is DPT-Hybrid (the released weights); ``tiny`` and
#: ``tiny_hybrid`` are the spec's CPU-test sizes.
DPT_CONFIGS = {
    "vitb_rn50_384": dict(_BASE),
    "vitb16_384": dict(_BASE, hybrid=False, hooks=(2, 5, 8, 11), reassemble_ch=(96, 192, 384, 768)),
    "tiny": dict(
        _BASE,
        hybrid=False,
        gn_groups=8,
        embed_dim=64,
        depth=4,
        heads=2,
        mlp_ratio=2,
        hooks=(0, 1, 2, 3),
        reassemble_ch=(16, 32, 64, 64),
        features=32,
        head_hidden=8,
        pos_grid=(4, 6),
    ),
}
DPT_CONFIGS["tiny_hybrid"] = dict(
    DPT_CONFIGS["tiny"],
    hybrid=True,
    resnet_layers=(1, 1, 1),
    resnet_widths=(32, 64, 128),
    resnet_stem=16,
    reassemble_ch=(32, 64, 64, 64),
)

#: Output channels and final activation per head: DPT depth (ReLU, ``non_negative=True``) and
#: BRViT's render head (3 channels, no activation, image range but not clamped).
HEADS = {"depth": (1, "relu"), "render": (3, None)}

#: Checkpoint entries that exist in the released files but that DPT never uses: the ViT's final
#: LayerNorm and ImageNet classifier, and refinenet4's first residual unit (``Fuse4`` has no skip).
UNUSED_KEY_PREFIXES = (
    "pretrained.model.norm.",
    "pretrained.model.head.",
    "scratch.refinenet4.resConfUnit1.",
)


def dpt_config(backbone="vitb_rn50_384", **overrides):
    """The knob dict of a named backbone with ``overrides`` applied (unknown knobs refused)."""
    if backbone not in DPT_CONFIGS:
        raise ValueError(f"backbone={backbone!r}: expected one of {sorted(DPT_CONFIGS)}")
    cfg = dict(DPT_CONFIGS[backbone])
    unknown = set(overrides) - set(cfg)
    if unknown:
        raise ValueError(f"unknown DPT config knobs {sorted(unknown)}; known: {sorted(cfg)}")
    cfg.update(overrides)
    if cfg["hybrid"] and tuple(cfg["reassemble_ch"][:2]) != tuple(cfg["resnet_widths"][:2]):
        raise ValueError(
            "hybrid DPT: reassemble_ch[:2] must equal resnet_widths[:2] (the ResNet stages are "
            f"taken as they are), got {cfg['reassemble_ch']} and {cfg['resnet_widths']}"
        )
    return cfg


# --- encoder ----------------------------------------------------------------------------------


def _gn(x, cfg, name, act, dtype):
    x = keras.layers.GroupNormalization(cfg["gn_groups"], epsilon=1e-5, name=name, dtype=dtype)(x)
    return keras.layers.ReLU(name=name + "_relu", dtype=dtype)(x) if act else x


def _std_conv(x, filters, kernel, strides, name, dtype):
    return StdConv2D(
        filters, kernel, strides=strides, padding="same", use_bias=False, name=name, dtype=dtype
    )(x)


def _bottleneck(x, width, stride, cfg, name, dtype):
    """timm 0.4.5 non-pre-activation ResNetV2 bottleneck (stride on the 3x3 of block 0)."""
    mid = width // 4
    shortcut = x
    if name.endswith("_b0"):
        shortcut = _std_conv(x, width, 1, stride, name + "_downsample_conv", dtype)
        shortcut = _gn(shortcut, cfg, name + "_downsample_norm", False, dtype)
    y = _gn(_std_conv(x, mid, 1, 1, name + "_conv1", dtype), cfg, name + "_norm1", True, dtype)
    y = _gn(_std_conv(y, mid, 3, stride, name + "_conv2", dtype), cfg, name + "_norm2", True, dtype)
    y = _gn(_std_conv(y, width, 1, 1, name + "_conv3", dtype), cfg, name + "_norm3", False, dtype)
    y = keras.layers.Add(name=name + "_add", dtype=dtype)([y, shortcut])
    return keras.layers.ReLU(name=name + "_out", dtype=dtype)(y)


def _resnet(x, cfg, dtype, prefix):
    """Hybrid stem: returns the outputs of stages 0, 1, 2 (H/4, H/8, H/16)."""
    x = _std_conv(x, cfg["resnet_stem"], 7, 2, prefix + "resnet_stem_conv", dtype)
    x = _gn(x, cfg, prefix + "resnet_stem_norm", True, dtype)
    x = keras.layers.MaxPooling2D(
        3, 2, padding="same", name=prefix + "resnet_stem_pool", dtype=dtype
    )(x)
    outs = []
    for s, (n_blocks, width) in enumerate(
        zip(cfg["resnet_layers"], cfg["resnet_widths"], strict=True)
    ):
        for i in range(n_blocks):
            stride = (1, 2, 2)[s] if i == 0 else 1
            x = _bottleneck(x, width, stride, cfg, f"{prefix}resnet_s{s}_b{i}", dtype)
        outs.append(x)
    return outs


def _transformer_block(x, cfg, j, dtype, prefix):
    name, dim = f"{prefix}block{j}", cfg["embed_dim"]
    y = keras.layers.LayerNormalization(epsilon=1e-6, name=name + "_norm1", dtype=dtype)(x)
    y = keras.layers.Dense(3 * dim, name=name + "_attn_qkv", dtype=dtype)(y)
    y = SelfAttention(cfg["heads"], name=name + "_attn", dtype=dtype)(y)
    y = keras.layers.Dense(dim, name=name + "_attn_proj", dtype=dtype)(y)
    x = keras.layers.Add(name=name + "_add1", dtype=dtype)([x, y])
    y = keras.layers.LayerNormalization(epsilon=1e-6, name=name + "_norm2", dtype=dtype)(x)
    y = keras.layers.Dense(dim * cfg["mlp_ratio"], name=name + "_mlp_fc1", dtype=dtype)(y)
    y = keras.layers.Activation("gelu", name=name + "_mlp_gelu", dtype=dtype)(y)  # exact erf
    y = keras.layers.Dense(dim, name=name + "_mlp_fc2", dtype=dtype)(y)
    return keras.layers.Add(name=name + "_add2", dtype=dtype)([x, y])


def _reassemble(tokens, grid, k, cfg, dtype, prefix):
    """Readout projection, tokens -> (H/16, W/16) grid, then resample to level k's stride."""
    name, ch = f"{prefix}reassemble{k}", cfg["reassemble_ch"][k - 1]
    x = ReadoutConcat(name=name + "_readout_concat", dtype=dtype)(tokens)
    x = keras.layers.Dense(cfg["embed_dim"], name=name + "_readout_project", dtype=dtype)(x)
    x = keras.layers.Activation("gelu", name=name + "_readout_gelu", dtype=dtype)(x)
    x = TokensToGrid(name=name + "_grid", dtype=dtype)([x, grid])
    x = keras.layers.Conv2D(ch, 1, name=name + "_conv1x1", dtype=dtype)(x)
    if k in (1, 2):  # plain ViT only: transposed conv up to H/4 or H/8
        s = 4 if k == 1 else 2
        x = keras.layers.Conv2DTranspose(ch, s, strides=s, name=name + "_upconv", dtype=dtype)(x)
    elif k == 4:  # PyTorch padding=1 is symmetric; Keras "same" would pad bottom/right only
        x = keras.layers.ZeroPadding2D(1, name=name + "_pad", dtype=dtype)(x)
        x = keras.layers.Conv2D(ch, 3, strides=2, name=name + "_conv3x3", dtype=dtype)(x)
    return x


def dpt_encoder(image, cfg, dtype="float32", prefix=""):
    """Encoder E(x): normalised NHWC image -> [E1, E2, E3, E4] at H/4 .. H/32, F channels."""
    levels = [None] * 4
    if cfg["hybrid"]:
        l1, l2, stage2 = _resnet(image, cfg, dtype, prefix)
        levels[0], levels[1] = l1, l2
        grid = keras.layers.Conv2D(
            cfg["embed_dim"], 1, name=prefix + "patch_embed_proj", dtype=dtype
        )(stage2)
    else:
        p = cfg["patch"]
        grid = keras.layers.Conv2D(
            cfg["embed_dim"], p, strides=p, name=prefix + "patch_embed_proj", dtype=dtype
        )(image)
    x = ClassTokenPosEmbed(cfg["pos_grid"], name=prefix + "pos_embed", dtype=dtype)(grid)
    taps = {}
    for j in range(max(cfg["hooks"]) + 1):
        x = _transformer_block(x, cfg, j, dtype, prefix)
        taps[j] = x
    for k in range(1, 5):
        if levels[k - 1] is None:
            levels[k - 1] = _reassemble(taps[cfg["hooks"][k - 1]], grid, k, cfg, dtype, prefix)
    return [
        keras.layers.Conv2D(
            cfg["features"],
            3,
            padding="same",
            use_bias=False,
            name=f"{prefix}layer{k}_rn",
            dtype=dtype,
        )(lvl)
        for k, lvl in enumerate(levels, start=1)
    ]


# --- decoder and heads ------------------------------------------------------------------------


def _rcu(x, features, name, dtype):
    """Residual conv unit: x + conv2(ReLU(conv1(ReLU(x))))."""
    y = keras.layers.ReLU(name=name + "_relu1", dtype=dtype)(x)
    y = keras.layers.Conv2D(features, 3, padding="same", name=name + "_conv1", dtype=dtype)(y)
    y = keras.layers.ReLU(name=name + "_relu2", dtype=dtype)(y)
    y = keras.layers.Conv2D(features, 3, padding="same", name=name + "_conv2", dtype=dtype)(y)
    return keras.layers.Add(name=name + "_add", dtype=dtype)([x, y])


def _fuse(a, skip, k, features, dtype, prefix):
    """Fusion block: out_conv(Up(RCU2(a + RCU1(skip)))), Up = bilinear x2, align_corners=True."""
    name = f"{prefix}refinenet{k}"
    if skip is not None:
        a = keras.layers.Add(name=name + "_add", dtype=dtype)(
            [a, _rcu(skip, features, name + "_rcu1", dtype)]
        )
    x = _rcu(a, features, name + "_rcu2", dtype)
    x = BilinearUpsample(2, align_corners=True, name=name + "_up", dtype=dtype)(x)
    return keras.layers.Conv2D(features, 1, name=name + "_out_conv", dtype=dtype)(x)


def dpt_decoder(feats, cfg, head="depth", dtype="float32", prefix=""):
    """Decoder + head: [E1..E4] -> N x H x W x C (C = 1 for ``depth``, 3 for ``render``)."""
    if head not in HEADS:
        raise ValueError(f"head={head!r}: expected one of {sorted(HEADS)}")
    f = cfg["features"]
    path = _fuse(feats[3], None, 4, f, dtype, prefix)
    for k in (3, 2, 1):
        path = _fuse(path, feats[k - 1], k, f, dtype, prefix)
    x = keras.layers.Conv2D(f // 2, 3, padding="same", name=prefix + "head_conv0", dtype=dtype)(
        path
    )
    x = BilinearUpsample(2, align_corners=True, name=prefix + "head_up", dtype=dtype)(x)
    x = keras.layers.Conv2D(
        cfg["head_hidden"], 3, padding="same", name=prefix + "head_conv2", dtype=dtype
    )(x)
    x = keras.layers.ReLU(name=prefix + "head_relu3", dtype=dtype)(x)
    channels, act = HEADS[head]
    x = keras.layers.Conv2D(channels, 1, name=prefix + "head_conv4", dtype=dtype)(x)
    if act:
        x = keras.layers.ReLU(name=prefix + "head_relu5", dtype=dtype)(x)
    return x


def build_dpt(backbone="vitb_rn50_384", head="depth", dtype="float32", name="dpt", **overrides):
    """DPT as a Keras model: input ``(x - 0.5) / 0.5`` NHWC (H, W multiples of 32), output
    N x H x W x C (C = 1, ReLU, for ``head="depth"``; 3 for BRViT's ``head="render"``).

    ``backbone`` names a config of ``DPT_CONFIGS``; keyword ``overrides`` change single knobs
    (``features=128``, ``depth=6``, ...). ``dtype="float64"`` builds every layer in float64.
    """
    cfg = dpt_config(backbone, **overrides)
    image = keras.Input((None, None, 3), name="image", dtype=dtype)
    out = dpt_decoder(dpt_encoder(image, cfg, dtype), cfg, head, dtype)
    return keras.Model(image, out, name=name)


def dpt_stage_model(model, prefix=""):
    """A model sharing ``model``'s layers whose dict output holds the stages the reference
    fixture stores: layer1..4, resnet_stage2 (hybrid), tokens at the last two hooks' blocks,
    layerK_rn, path4..path1, head_raw and the output."""
    layers = {
        layer.name[len(prefix) :]: layer for layer in model.layers if layer.name.startswith(prefix)
    }
    taps = {}
    if "resnet_stem_conv" in layers:
        for k in (1, 2, 3):
            last = max(
                int(n.split("_b")[1].split("_")[0])
                for n in layers
                if n.startswith(f"resnet_s{k - 1}_b")
            )
            taps["resnet_stage2" if k == 3 else f"layer{k}"] = f"resnet_s{k - 1}_b{last}_out"
    else:
        taps["layer1"], taps["layer2"] = "reassemble1_upconv", "reassemble2_upconv"
    taps["layer3"], taps["layer4"] = "reassemble3_conv1x1", "reassemble4_conv3x3"
    blocks = sorted(
        int(n[5:].split("_")[0]) for n in layers if n.startswith("block") and n.endswith("_add2")
    )
    taps.update({f"tokens{j}": f"block{j}_add2" for j in blocks[-4:]})
    taps.update({f"layer{k}_rn": f"layer{k}_rn" for k in range(1, 5)})
    taps.update({f"path{k}": f"refinenet{k}_out_conv" for k in range(1, 5)})
    taps["head_raw"] = "head_conv4"
    outputs = {key: layers[name].output for key, name in taps.items()}
    if not prefix:
        outputs["output"] = model.outputs[0]
    return keras.Model(model.input, outputs, name=model.name + "_stages")


# --- checkpoint import ------------------------------------------------------------------------


def dpt_key_map(cfg):
    """PyTorch state_dict key -> (Keras layer name, weight index) for a DPT of config ``cfg``."""
    modules = {}
    pre, m = "pretrained.", "pretrained.model."
    if cfg["hybrid"]:
        bb = m + "patch_embed.backbone."
        modules[bb + "stem.conv"] = "resnet_stem_conv"
        modules[bb + "stem.norm"] = "resnet_stem_norm"
        for s, n_blocks in enumerate(cfg["resnet_layers"]):
            for i in range(n_blocks):
                t, k = f"{bb}stages.{s}.blocks.{i}.", f"resnet_s{s}_b{i}_"
                parts = ["conv1", "norm1", "conv2", "norm2", "conv3", "norm3"]
                if i == 0:
                    parts = ["downsample.conv", "downsample.norm"] + parts
                for part in parts:
                    modules[t + part] = k + part.replace(".", "_")
    modules[m + "patch_embed.proj"] = "patch_embed_proj"
    for j in range(max(cfg["hooks"]) + 1):
        for part in ["norm1", "attn.qkv", "attn.proj", "norm2", "mlp.fc1", "mlp.fc2"]:
            modules[f"{m}blocks.{j}.{part}"] = f"block{j}_" + part.replace(".", "_")
    for k in range(1, 5):
        if cfg["hybrid"] and k < 3:
            continue
        t = f"{pre}act_postprocess{k}."
        modules[t + "0.project.0"] = f"reassemble{k}_readout_project"
        modules[t + "3"] = f"reassemble{k}_conv1x1"
        if k != 3:
            modules[t + "4"] = f"reassemble{k}_" + ("conv3x3" if k == 4 else "upconv")
    for k in range(1, 5):
        modules[f"scratch.layer{k}_rn"] = f"layer{k}_rn"
        t = f"scratch.refinenet{k}."
        modules[t + "out_conv"] = f"refinenet{k}_out_conv"
        for u in (1, 2) if k != 4 else (2,):
            for c in (1, 2):
                modules[f"{t}resConfUnit{u}.conv{c}"] = f"refinenet{k}_rcu{u}_conv{c}"
    for i in (0, 2, 4):
        modules[f"scratch.output_conv.{i}"] = f"head_conv{i}"
    key_map = {m + "cls_token": ("pos_embed", 0), m + "pos_embed": ("pos_embed", 1)}
    for module, layer in modules.items():
        key_map[module + ".weight"] = (layer, 0)
        no_bias = layer.startswith(("resnet_", "layer")) and "norm" not in layer
        if not no_bias:
            key_map[module + ".bias"] = (layer, 1)
    return key_map


# One error class per kind across the package; the old name stays importable.
CheckpointMismatchError = WeightsMismatchError


def _torch_to_keras(array):
    """Conv (O,I,kh,kw) and ConvTranspose (I,O,kh,kw) -> (kh,kw,I,O) / (kh,kw,O,I); Linear
    (O,I) -> (I,O); everything else unchanged."""
    if array.ndim == 4:
        return array.transpose(2, 3, 1, 0)
    if array.ndim == 2:
        return array.T
    return array


def _model_layers(model, prefix=""):
    """{name without ``prefix``: layer} of the layers with weights whose name starts with
    ``prefix`` (a DPT inside a bigger flat model, e.g. BRADCN's ``depth_``), nested models
    included."""
    found = {}
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            found.update(_model_layers(layer, prefix))
        elif layer.weights and layer.name.startswith(prefix):
            found[layer.name[len(prefix) :]] = layer
    return found


def _infer_config(layers):
    """Rebuild the key-relevant knobs from the layer names of a built DPT."""
    names = set(layers)
    hybrid = "resnet_stem_conv" in names
    blocks = [
        int(n[5:].split("_")[0]) for n in names if n.startswith("block") and n.endswith("_qkv")
    ]
    cfg = dict(hybrid=hybrid, hooks=(0, 0, 0, max(blocks)))  # only the deepest block matters
    if hybrid:
        cfg["resnet_layers"] = tuple(
            len({n.split("_")[2] for n in names if n.startswith(f"resnet_s{s}_b")})
            for s in range(3)
        )
    return cfg


def assign_dpt_weights(model, state_dict, source="state_dict", skip=(), prefix=""):
    """Assign a DPT ``state_dict`` (name -> numpy array, PyTorch layout) to the layers of
    ``model`` named ``prefix`` + the DPT layer name (``build_dpt`` uses no prefix).

    Skips exactly the entries of ``UNUSED_KEY_PREFIXES`` (plus the key prefixes in ``skip``,
    e.g. a depth head's last conv when initialising a render head); any other key the model
    lacks, any model weight the file lacks, and any shape mismatch raise
    ``CheckpointMismatchError`` naming the keys. Returns the list of skipped keys.
    """
    layers = _model_layers(model, prefix)
    if "head_conv4" not in layers or "layer1_rn" not in layers:
        raise ValueError(
            f"{source}: model {model.name!r} has no DPT layers named {prefix!r} + 'head_conv4'"
        )
    skip = UNUSED_KEY_PREFIXES + tuple(skip)
    key_map = {
        k: v for k, v in dpt_key_map(_infer_config(layers)).items() if not k.startswith(skip)
    }
    skipped = sorted(k for k in state_dict if k.startswith(skip))
    extra = sorted(set(state_dict) - set(key_map) - set(skipped))
    missing = sorted(set(key_map) - set(state_dict))
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing keys: {', '.join(missing[:8])}")
    if extra:
        problems.append(f"{len(extra)} unexpected keys: {', '.join(extra[:8])}")
    values = {}
    for key, (layer_name, index) in key_map.items():
        if key not in state_dict:
            continue
        if layer_name not in layers:
            problems.append(f"model has no layer {layer_name!r} for key {key}")
            continue
        var = layers[layer_name].weights[index]
        value = _torch_to_keras(np.asarray(state_dict[key]))
        if tuple(value.shape) != tuple(var.shape):
            problems.append(
                f"{key}: file shape {tuple(np.asarray(state_dict[key]).shape)} -> "
                f"{tuple(value.shape)} does not fit {var.path} {tuple(var.shape)}"
            )
            continue
        values[key] = (var, value)
    if problems:
        raise CheckpointMismatchError(
            f"{source} does not match the DPT model: " + "; ".join(problems)
        )
    for var, value in values.values():
        var.assign(value.astype(var.dtype))
    return skipped


def load_dpt_checkpoint(model, path, skip=(), prefix=""):
    """Load a released DPT/BRViT ``.pt`` (zip or legacy torch format, read without torch) into
    a model from ``build_dpt`` (or the DPT layers named ``prefix`` + name of a bigger model).

    Accepts a bare state_dict or DPT's ``{"model": state_dict, ...}`` form (the reader unwraps
    it). Returns the skipped keys (``UNUSED_KEY_PREFIXES`` and ``skip``); see
    ``assign_dpt_weights`` for the errors.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"DPT checkpoint {path!r} not found: download dpt_hybrid_nyu-2ce69ec7.pt or "
            "dpt_hybrid-midas-501f0c75.pt from github.com/isl-org/DPT releases and pass its path"
        )
    state = load_torch_file(path)
    return assign_dpt_weights(model, state, source=path, skip=skip, prefix=prefix)
