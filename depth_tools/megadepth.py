"""MegaDepth's hourglass network (Li & Snavely 2018; Chen et al. 2016) in Keras 3.

    net = build_megadepth()                    # input RGB in [0,1], (N, H, W, 3), H, W % 16 == 0
    load_megadepth_weights(net, "best_generalization_net_G.pth")   # or a .weights.h5
    log_depth = net(rgb)                       # (N, H, W, 1), the original's raw output

Layer names say where a layer sits and map one to one onto the released state dict:
``c{L}_{pool|plain}_inc{i}_b{b}_{conv1|bn1|conv2|bn2}`` is inception module ``i`` (its index in
the branch, the pooling layer being index 0 of a pooled branch), branch ``b`` of the
``pool``-ed or ``plain`` branch of the ChannelsL block; see ``torch_key``.
"""

from __future__ import annotations

import re
from pathlib import Path

import keras
import numpy as np

from pynet_bokeh.weights.torch_file import load_torch_file

__all__ = ["build_megadepth", "load_megadepth_weights", "torch_key", "MEGADEPTH_MULTIPLE"]

MEGADEPTH_MULTIPLE = 16  # four 2x2 poolings
BN_EPSILON = 1e-5  # PyTorch's default; Keras' 1e-3 would be wrong here

# Inception configs [[a], [k1, r1, o1], [k2, r2, o2], [k3, r3, o3]], named as in the spec.
_E = ((64,), (3, 32, 64), (5, 32, 64), (7, 32, 64))
_F = ((64,), (3, 64, 64), (7, 64, 64), (11, 64, 64))
_G = ((32,), (3, 32, 32), (5, 32, 32), (7, 32, 32))
_I = ((32,), (3, 64, 32), (7, 64, 32), (11, 64, 32))
_J = ((32,), (3, 64, 32), (5, 64, 32), (7, 64, 32))
_K = ((16,), (3, 32, 16), (7, 32, 16), (11, 32, 16))
_L = ((16,), (3, 64, 16), (7, 64, 16), (11, 64, 16))

# ChannelsL: pooling of the pooled branch, the pooled branch's modules after its pool (an int is
# the nested Channels block), the plain branch's modules. Output = pooled + plain.
_CHANNELS = {
    4: ("max", (_G, _G, 3, _J, _K), (_L,)),
    3: ("max", (_G, _E, 2, _E, _G), (_G, _I)),
    2: ("avg", (_E, _E, 1, _E, _F), (_E, _F)),
    1: ("avg", (_E, _E, _E), (_E, _E)),
}


def _inception(x, cfg, name):
    """Four branches concatenated: 1x1 conv; and 1x1 conv -> k x k conv, each conv + BN + ReLU."""

    def conv_bn_relu(y, filters, kernel, tag):
        y = keras.layers.Conv2D(
            filters, kernel, padding="same", name=f"{name}_{tag[0]}conv{tag[1]}"
        )(y)
        y = keras.layers.BatchNormalization(
            center=False,
            scale=False,
            epsilon=BN_EPSILON,
            momentum=0.9,
            name=f"{name}_{tag[0]}bn{tag[1]}",
        )(y)
        return keras.layers.ReLU(name=f"{name}_{tag[0]}relu{tag[1]}")(y)

    outs = [conv_bn_relu(x, cfg[0][0], 1, ("b0_", 1))]
    for b, (kernel, reduce, filters) in enumerate(cfg[1:], start=1):
        y = conv_bn_relu(x, reduce, 1, (f"b{b}_", 1))
        outs.append(conv_bn_relu(y, filters, kernel, (f"b{b}_", 2)))
    return keras.layers.Concatenate(name=f"{name}_concat")(outs)


def _channels(x, level):
    """ChannelsL: (pool -> modules -> nearest x2 up) + plain modules."""
    pool, pooled_items, plain_items = _CHANNELS[level]
    name = f"c{level}"
    pool_layer = keras.layers.MaxPooling2D if pool == "max" else keras.layers.AveragePooling2D
    a = pool_layer(2, name=f"{name}_pool_{pool}pool")(x)
    for i, item in enumerate(pooled_items, start=1):
        if isinstance(item, int):
            a = _channels(a, item)
        else:
            a = _inception(a, item, f"{name}_pool_inc{i}")
    a = keras.layers.UpSampling2D(2, interpolation="nearest", name=f"{name}_pool_up")(a)
    b = x
    for i, cfg in enumerate(plain_items):
        b = _inception(b, cfg, f"{name}_plain_inc{i}")
    return keras.layers.Add(name=f"{name}_add")([a, b])


def build_megadepth(name="megadepth"):
    """The MegaDepth hourglass: RGB in [0,1] (N, H, W, 3), H and W multiples of 16 ->
    log depth (N, H, W, 1). 5,357,153 trainable parameters; BatchNorm as in the original."""
    rgb = keras.Input((None, None, 3), name="rgb")
    x = keras.layers.Conv2D(128, 7, padding="same", name="conv1")(rgb)
    x = keras.layers.BatchNormalization(epsilon=BN_EPSILON, momentum=0.9, name="bn1")(x)
    x = keras.layers.ReLU(name="relu1")(x)
    x = _channels(x, 4)
    log_depth = keras.layers.Conv2D(1, 3, padding="same", name="head_conv")(x)
    return keras.Model(rgb, log_depth, name=name)


# --- PyTorch state dict mapping ------------------------------------------------------------

_TOP_KEYS = {"conv1": "module.0", "bn1": "module.1", "head_conv": "module.4"}
_INCEPTION_NAME = re.compile(r"^c([1-4])_(pool|plain)_inc(\d+)_b(\d)_(conv|bn)([12])$")


def _block_position(level):
    """State-dict prefix of the ChannelsL module (nested at index 3 of its parent's pool)."""
    return "module.3" if level == 4 else _branch_prefix(level + 1, "pool") + ".3"


def _branch_prefix(level, branch):
    # Channels4 and 3 list the pooled branch first, Channels2 and 1 the plain one.
    index = 0 if (branch == "pool") == (level >= 3) else 1
    return f"{_block_position(level)}.0.{index}"


def torch_key(layer_name):
    """State-dict prefix (``module.3.0.0.1.2.3``) of the Keras layer ``layer_name``, or None
    for a layer without weights in the original (pools, ReLUs, concatenations)."""
    if layer_name in _TOP_KEYS:
        return _TOP_KEYS[layer_name]
    m = _INCEPTION_NAME.match(layer_name)
    if m is None:
        return None
    level, branch, module, b, kind, stage = m.groups()
    index = {("1", "conv"): 0, ("1", "bn"): 1, ("2", "conv"): 3, ("2", "bn"): 4}[(stage, kind)]
    return f"{_branch_prefix(int(level), branch)}.{module}.{b}.{index}"


def _normalise_keys(state, source):
    # The released file was saved from nn.DataParallel ("module." prefixes); accept both.
    state = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    if state and not any(k.startswith("module.") for k in state):
        state = {f"module.{k}": v for k, v in state.items()}
    return state


def _keras_weights(layer, prefix, state, source):
    """The Keras weight list of ``layer`` from the torch tensors under ``prefix``."""
    if isinstance(layer, keras.layers.Conv2D):
        names, convert = ("weight", "bias"), (lambda w: w.transpose(2, 3, 1, 0), lambda b: b)
    elif isinstance(layer, keras.layers.BatchNormalization):
        names = ("running_mean", "running_var")
        if layer.scale:
            names = ("weight", "bias") + names
        convert = (lambda v: v,) * len(names)
    else:
        raise ValueError(f"layer {layer.name!r} has weights but no PyTorch counterpart")
    out = []
    for tensor_name, fn, var in zip(names, convert, layer.weights, strict=True):
        key = f"{prefix}.{tensor_name}"
        if key not in state:
            raise KeyError(f"{source}: missing tensor {key!r} (for Keras layer {layer.name!r})")
        value = fn(np.asarray(state[key], np.float32))
        if tuple(value.shape) != tuple(var.shape):
            raise ValueError(
                f"{source}: tensor {key!r} has shape {tuple(state[key].shape)}, which does not "
                f"fit Keras layer {layer.name!r} (weight shape {tuple(var.shape)}): is this a "
                "MegaDepth hourglass (net_G) file?"
            )
        out.append(value)
    return out, [f"{prefix}.{n}" for n in names]


def check_weights_path(path):
    """``path`` as a Path if it is a file, else FileNotFoundError saying where to get it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: MegaDepth weights not found. Download best_generalization_net_G.pth from "
            "the MegaDepth project page (Li & Snavely, CVPR 2018) and pass its path."
        )
    return path


def load_megadepth_weights(model, path):
    """Load MegaDepth weights into ``build_megadepth()``'s model, without PyTorch.

    ``path``: the released ``best_generalization_net_G.pth`` / ``best_vanila_net_G.pth`` (legacy
    torch.save format), any zip-format .pth with the same state dict, or a ``.weights.h5``
    written by ``depth-tools-convert``. A missing or extra tensor or a wrong shape raises an
    error naming the tensor. Returns ``model``.
    """
    path = check_weights_path(path)
    if path.name.endswith(".h5"):
        model.load_weights(path)
        return model
    state = _normalise_keys(load_torch_file(path), path)
    used, assignments = set(), []
    for layer in model.layers:
        if not layer.weights:
            continue
        prefix = torch_key(layer.name)
        if prefix is None:
            raise ValueError(
                f"model layer {layer.name!r} has weights but no MegaDepth state-dict key: "
                "load_megadepth_weights expects a model from build_megadepth()"
            )
        values, keys = _keras_weights(layer, prefix, state, path)
        assignments.append((layer, values))
        used.update(keys)
    extra = sorted(set(state) - used)
    if extra:
        raise KeyError(
            f"{path}: {len(extra)} tensor(s) not used by the MegaDepth hourglass, e.g. "
            f"{', '.join(repr(k) for k in extra[:5])}: is this a MegaDepth net_G file?"
        )
    for layer, values in assignments:  # only once everything checked out
        layer.set_weights(values)
    return model
