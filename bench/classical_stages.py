"""Would an app-driven layer loop make the classical .tflite as fast as the TF engine?

    python bench/classical_stages.py [--photos ../shared/ebb_samples] [--repeats 5]

The exported classical renderer is one graph whose layer loop is a `WHILE`; LiteRT runs the
loop bodies on its builtin kernels (the XNNPACK delegate takes the main graph only), and that
is most of why it is slower than the TF engine (XLA-compiled stages, the layer loop in
Python). The route left is an app that runs the loop itself, calling a per-layer signature
that XNNPACK does delegate. This measures that route's best case in one process:

- the TF engine's cost per layer: the slope of its render time between a small and a large
  blur (K) on one photo, over the number of layers each has;
- the cheapest layer a per-layer signature can run: a layer at half resolution (the finest
  coarse scale, where most layers of a strong blur go), its premultiplied image made from the
  photo's 2 x 2 sub-pixel planes (or from a full-resolution mask and a 2 x 2 average pool,
  whichever is faster), reflect-padded, blurred with a 9 x 9 disc built from its run-time
  radius and composited "over" the accumulated image: everything a layer needs and nothing
  more. Timed through the LiteRT signature runner with XNNPACK, as an app would call it, and
  with the builtin kernels for comparison.

The staged route can beat the TF engine only if its layer is cheaper than the TF engine's
(the fixed part, conversions and the layer plan, would have to be free for it to win with an
equal one). Prints both per-layer costs and their ratio.
"""

import argparse
import functools
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def layer_signatures(h, w):
    """A tf.Module with the two per-layer signatures at half resolution (h x w = H/2 x W/2)."""
    import tensorflow as tf

    from pynet_bokeh.render.classical_tf import disc_kernel_tf

    half = 4  # the coarse scales' disc grid (COARSE_RADIUS 4 px)

    def blur_over(premult, radius, acc):
        padded = tf.pad(premult, [[0, 0], [half, half], [half, half], [0, 0]], mode="REFLECT")
        kernel = disc_kernel_tf(tf.minimum(tf.reshape(radius, []), half + 0.5), half)
        kernel = tf.tile(kernel[:, :, None, None], [1, 1, 4, 1])
        layer = tf.nn.depthwise_conv2d(padded, kernel, [1, 1, 1, 1], "VALID")
        return acc * (1.0 - layer[..., 3:4]) + layer

    spec = tf.TensorSpec

    class Stages(tf.Module):
        @tf.function(
            input_signature=[
                spec([1, h, w, 4]),  # the bins of the 2 x 2 sub-pixels (float)
                spec([1, h, w, 16]),  # premultiplied colour and coverage of each sub-pixel
                spec([1, 1]),  # the layer's bin
                spec([1, 1]),  # its disc radius at this scale
                spec([1, h, w, 4]),  # the accumulated image
            ]
        )
        def subpixel(self, bins4, data16, b, radius, acc):
            mask = tf.nn.relu(1.0 - tf.abs(bins4 - b))  # 1 where bin == b (integer bins)
            premult = tf.reduce_sum(tf.reshape(data16, [1, h, w, 4, 4]) * mask[..., None], 3)
            return {"acc": blur_over(premult * 0.25, radius, acc)}

        @tf.function(
            input_signature=[
                spec([1, 2 * h, 2 * w, 1]),
                spec([1, 2 * h, 2 * w, 4]),
                spec([1, 1]),
                spec([1, 1]),
                spec([1, h, w, 4]),
            ]
        )
        def pooled(self, bins, data, b, radius, acc):
            mask = tf.nn.relu(1.0 - tf.abs(bins - b))
            premult = tf.nn.avg_pool2d(data * mask, 2, 2, "VALID")
            return {"acc": blur_over(premult, radius, acc)}

    return Stages()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", default=str(REPO.parent / "shared" / "ebb_samples"))
    parser.add_argument("--height", type=int, default=1024)
    parser.add_argument("--width", type=int, default=1536)
    parser.add_argument("--blur_fractions", default="0.0002,0.02", help="small,large K / long side")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    import tensorflow as tf

    from pynet_bokeh import image_io
    from pynet_bokeh.bench_utils import best_time
    from pynet_bokeh.export import find_photo_depth_pairs, fit_to_size, make_interpreter
    from pynet_bokeh.render.classical_tf import MAX_LAYERS, _layer_plan, focus_disparity_tf
    from pynet_bokeh.renderers import get_renderer

    h, w = args.height, args.width
    photo_path, depth_path = find_photo_depth_pairs(args.photos)[0]
    photo = fit_to_size(image_io.read_photo(photo_path), (h, w))
    depth = fit_to_size(image_io.read_depth(depth_path)[..., None], (h // 2, w // 2))
    focus = (w / 2, h / 2)
    engine = get_renderer("classical", engine="tf")

    # The TF engine: time and number of layers at a small and a large K.
    d_f = focus_disparity_tf(depth[None], focus, (h, w))
    disparity = tf.image.resize(depth[None], (h, w), method="bilinear")
    points = []
    for frac in (float(f) for f in args.blur_fractions.split(",")):
        k = frac * max(h, w)
        present = _layer_plan(disparity, d_f, k, MAX_LAYERS, 0)[-1]
        layers = int(np.sum(present.numpy()))
        render = lambda k=k: engine.render(photo, depth[..., 0], focus=focus, blur=k)  # noqa: E731
        seconds = best_time(render, repeats=args.repeats)
        points.append((k, layers, seconds))
        print(
            f"TF engine, {photo_path.name}, K = {k:.1f} px: {layers} layers, {seconds * 1e3:.0f} ms",
            flush=True,
        )
    (_, n0, t0), (_, n1, t1) = points
    tf_per_layer = (t1 - t0) / max(n1 - n0, 1)

    # The per-layer signatures through LiteRT.
    hh, ww = h // 2, w // 2
    stages = layer_signatures(hh, ww)
    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [stages.subpixel.get_concrete_function(), stages.pooled.get_concrete_function()], stages
    )
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    with tempfile.TemporaryDirectory(prefix="bench_stages_") as tmp:
        path = Path(tmp) / "stages.tflite"
        path.write_bytes(converter.convert())
        rng = np.random.default_rng(0)
        bins = rng.integers(0, n1, (1, h, w, 1)).astype(np.float32)
        data = np.concatenate([rng.random((1, h, w, 3), np.float32), np.ones((1, h, w, 1))], -1)
        data = data.astype(np.float32)
        sub = data.reshape(1, hh, 2, ww, 2, 4).transpose(0, 1, 3, 2, 4, 5)
        scalars = {"b": np.array([[3.0]], np.float32), "radius": np.array([[3.5]], np.float32)}
        acc = np.zeros((1, hh, ww, 4), np.float32)
        feeds = {
            "subpixel": {
                "bins4": bins.reshape(1, hh, 2, ww, 2)
                .transpose(0, 1, 3, 2, 4)
                .reshape(1, hh, ww, 4),
                "data16": sub.reshape(1, hh, ww, 16).copy(),
                "acc": acc,
                **scalars,
            },
            "pooled": {"bins": bins, "data": data, "acc": acc, **scalars},
        }
        lite = {}
        for delegates in (True, False):
            interpreter = make_interpreter(path, default_delegates=delegates)
            for name, feed in feeds.items():
                runner = interpreter.get_signature_runner(name)
                lite[delegates, name, "call"] = best_time(
                    lambda r=runner, f=feed: r(**f), args.repeats
                )
                # The invoke alone, inputs already in place (an app with bound buffers); the
                # runner has no public call for it.
                invoke = functools.partial(
                    runner._interpreter_wrapper.Invoke, runner._subgraph_index
                )
                lite[delegates, name, "invoke"] = best_time(invoke, args.repeats)
            del interpreter
    print()
    print(f"{h} x {w}, {os.cpu_count()} CPU threads, best of {args.repeats} after a warm-up")
    print(f"TF engine per layer (slope, {n0} -> {n1} layers): {tf_per_layer * 1e3:.1f} ms")
    print("LiteRT, one half-resolution layer (call: inputs fed from NumPy; invoke: run alone):")
    for (delegates, name, how), seconds in lite.items():
        kernels = "XNNPACK" if delegates else "builtin"
        print(f"  {name:8s} {kernels:7s} {how:6s} {seconds * 1e3:6.1f} ms")
    best = min(seconds for (delegates, *_), seconds in lite.items() if delegates)
    ratio = tf_per_layer / best
    verdict = "could" if ratio >= 1 else "cannot"
    print(
        f"LiteRT's cheapest layer vs the TF engine's: {ratio:.2f}x "
        f"(>= 1 needed): an app-driven loop {verdict} reach the TF engine on this CPU"
    )


if __name__ == "__main__":
    main()
