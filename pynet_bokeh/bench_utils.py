"""Helpers for the `bench/` scripts: FLOP counts, the machine's matmul peak, peak RSS.

Benchmarks report ratios measured in one process (achieved / peak), never bare times.
"""

import resource
import sys
import time

import keras
import numpy as np
import tensorflow as tf


def matmul_peak_gflops(n=4096, repeats=5, dtype=tf.float32):
    """Best-of-`repeats` GFLOP/s of an n x n float32 matmul (2 n^3 FLOPs) in this process."""
    a = tf.random.uniform((n, n), dtype=dtype)
    b = tf.random.uniform((n, n), dtype=dtype)
    matmul = tf.function(lambda x, y: tf.matmul(x, y))
    matmul(a, b).numpy()  # warm-up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        matmul(a, b).numpy()
        best = min(best, time.perf_counter() - start)
    return 2.0 * n**3 / best / 1e9


def _spatial(shape):
    return int(np.prod([d for d in shape[1:-1]]))


def count_flops(model, input_shape):
    """Multiply-add FLOPs (counted as 2) of the model's conv and dense layers for one input.

    `input_shape` excludes the batch, e.g. (512, 768, 4). Nested models are walked too.
    Elementwise ops (norms, activations, adds) are not counted: they are a few percent at most.
    """
    layers = [
        layer
        for layer in _walk(model)
        if isinstance(
            layer, (keras.layers.Conv2D, keras.layers.Conv2DTranspose, keras.layers.Dense)
        )
    ]
    before = {id(layer): len(layer._inbound_nodes) for layer in layers}
    # Replaying the graph on a fixed-shape input adds one node per layer call, with concrete
    # shapes (a plain symbolic model call would not reach the inner layers).
    if isinstance(input_shape[0], (tuple, list)):
        inputs = [keras.Input(tuple(s)) for s in input_shape]
    else:
        inputs = keras.Input(tuple(input_shape))
    _replay(model, inputs)
    total = 0
    for layer in layers:
        for node in layer._inbound_nodes[before[id(layer)] :]:
            in_shape = node.input_tensors[0].shape
            out_shape = node.output_tensors[0].shape
            total += _layer_flops(layer, in_shape, out_shape)
    return total


def _replay(model, inputs):
    def operation_fn(op):
        if isinstance(op, keras.Model) and hasattr(op, "_run_through_graph"):
            return lambda *args, **kwargs: _replay(op, args[0])
        return op

    if hasattr(model, "_run_through_graph"):
        return model._run_through_graph(inputs, operation_fn=operation_fn)
    return model(inputs)


def _layer_flops(layer, in_shape, out_shape):
    if isinstance(layer, keras.layers.Conv2DTranspose):
        k = int(np.prod(layer.kernel_size))
        return 2 * k * in_shape[-1] * out_shape[-1] * _spatial(in_shape)
    if isinstance(layer, keras.layers.Conv2D):
        k = int(np.prod(layer.kernel_size))
        groups = getattr(layer, "groups", 1) or 1
        return 2 * k * (in_shape[-1] // groups) * out_shape[-1] * _spatial(out_shape)
    rows = int(np.prod(in_shape[1:-1])) if len(in_shape) > 2 else 1
    return 2 * in_shape[-1] * out_shape[-1] * rows


def _walk(model):
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from _walk(layer)
        else:
            yield layer


def peak_rss_mb():
    """Peak resident set size of this process in MB (ru_maxrss is KiB on Linux)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 1024.0 if sys.platform != "darwin" else rss / 2**20


def best_time(fn, repeats=3, warmup=1):
    """Best wall time of `fn()` over `repeats` runs after `warmup` runs, in seconds."""
    for _ in range(warmup):
        fn()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def alternating_best_times(fns, repeats=3, warmup=1):
    """Best wall time of each of `fns`, run in turn (fn 0, fn 1, ..., fn 0, ...) `repeats`
    times after `warmup` turns, so that a load that comes and goes hits them alike and their
    ratios hold within one run."""
    for _ in range(warmup):
        for fn in fns:
            fn()
    best = [float("inf")] * len(fns)
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            start = time.perf_counter()
            fn()
            best[i] = min(best[i], time.perf_counter() - start)
    return best
