"""Range equalisation of concatenated branches before full-int8 conversion.

TFLite's int8 CONCATENATION gives all its inputs the output's one scale. In PyNET a level's
upsampling branch (`levelN_up_a/b`: transposed conv, no bias, LeakyReLU) is concatenated with
encoder features whose range is 10-40x larger, so int8 rounds the branch to noise: the
quantization debugger shows `level4_up_b_act` at 0.8 steps of std (`level3_enc` features
at 12). LeakyReLU and a bias-free conv are positively homogeneous (f(s x) = s f(x), s > 0), so
multiplying the branch's kernel by s and dividing the input channels it feeds in the next
convolutions by s gives the same float function with the branch at the concatenation's range
(cross-layer equalisation, Nagel et al., ICCV 2019, applied to concatenations).
"""

from __future__ import annotations

import math

import keras
import numpy as np
import tensorflow as tf


def _consumers(model):
    """{layer name: [(consumer layer, input position)]} within the functional `model`."""
    consumers = {}
    for layer in model.layers:
        for node in layer._inbound_nodes:
            for position, tensor in enumerate(node.input_tensors):
                producer = tensor._keras_history.operation
                consumers.setdefault(producer.name, []).append((layer, position))
    return consumers


def _channels(layer, position):
    return [int(t.shape[-1]) for t in layer._inbound_nodes[0].input_tensors][:position]


def _targets(layer, lo, hi, consumers, outputs, concats):
    """(conv, first channel, last channel) slices that read channels [lo, hi) of `layer`'s
    output, through concatenations (collected in `concats`); None if another op reads them."""
    if layer.name in outputs or layer.name not in consumers:
        return None
    found = []
    for consumer, position in consumers[layer.name]:
        if isinstance(consumer, keras.layers.Concatenate):
            offset = sum(_channels(consumer, position))
            concats.append(consumer)
            inner = _targets(consumer, offset + lo, offset + hi, consumers, outputs, concats)
            if inner is None:
                return None
            found += inner
        elif type(consumer) is keras.layers.Conv2D and consumer.groups == 1:
            found.append((consumer, lo, hi))
        else:
            return None
    return found


def _branches(model):
    """Concatenated branches that can be rescaled: [(transposed conv, its activation, conv
    slices reading it, concatenations it flows into)]."""
    consumers = _consumers(model)
    outputs = {t._keras_history.operation.name for t in model.outputs}
    found = []
    for layer in model.layers:
        if not isinstance(layer, keras.layers.Conv2DTranspose) or layer.use_bias:
            continue
        after = consumers.get(layer.name, [])
        if len(after) != 1 or not isinstance(after[0][0], keras.layers.LeakyReLU):
            continue
        act = after[0][0]
        if not all(isinstance(c, keras.layers.Concatenate) for c, _ in consumers.get(act.name, [])):
            continue
        concats = []
        targets = _targets(act, 0, int(layer.filters), consumers, outputs, concats)
        if targets:
            found.append((layer, act, targets, concats))
    return found


def equalize_concat_ranges(model, samples, max_scale=256.0):
    """Rescales `model`'s concatenated up-branches in place (see the module docstring).

    model: a functional keras.Model whose layers may be changed (pass a copy). samples: input
        arrays [1, H, W, C] (calibration photos) whose max |value| per tensor sets the scales.
    Returns {transposed conv name: scale}, a power of two (1 when the branch already matches).
    """
    branches = _branches(model)
    if not branches:
        return {}
    probes = []
    for _, act, _, concats in branches:
        probes.append(act.output)
        probes += [c.output for c in concats]
    probe = keras.Model(model.inputs, probes)
    run = tf.function(
        lambda x: [tf.reduce_max(tf.abs(t)) for t in probe(x, training=False)],
        reduce_retracing=True,
    )
    peaks = np.zeros(len(probes))
    for x in samples:
        peaks = np.maximum(peaks, [float(v) for v in run(tf.constant(x, tf.float32))])
    scales, i = {}, 0
    for up, _, targets, concats in branches:
        branch, group = peaks[i], peaks[i + 1 : i + 1 + len(concats)].max()
        i += 1 + len(concats)
        ratio = group / branch if branch > 0 else 1.0
        scale = float(min(max_scale, 2.0 ** math.floor(math.log2(ratio)))) if ratio >= 2 else 1.0
        scales[up.name] = scale
        if scale == 1.0:
            continue
        up.kernel.assign(up.kernel * scale)
        for conv, lo, hi in targets:
            kernel = conv.kernel.numpy()
            kernel[:, :, lo:hi, :] /= scale
            conv.kernel.assign(kernel)
    return scales


def equalized_copy(model, samples):
    """A copy of the functional `model` (own layers and weights) with its concatenated
    branches equalised on `samples`; returns (copy, {transposed conv name: scale})."""
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    return copy, equalize_concat_ranges(copy, samples)
