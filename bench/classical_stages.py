"""Would an app-driven layer loop make the classical .tflite as fast as the TF engine?

    python bench/classical_stages.py [--photos ../shared/ebb_samples] [--repeats 3]

The exported classical renderer is one graph whose layer loop is a `WHILE`; LiteRT runs the
loop bodies on its builtin kernels (the XNNPACK delegate takes the main graph only), and that
is most of why it is slower than the TF engine (XLA-compiled stages, the layer loop in
Python). The route left is an app that runs the loop itself, calling per-layer signatures that
XNNPACK does delegate. This bounds that route from below, in one process, on the first photo:

- the TF engine's whole render time at K = --blur_fraction x the long side, and the photo's
  layer plan there (how many layers at full resolution and at each coarse scale 2^level);
- through LiteRT with XNNPACK, the invoke time (inputs already in place, as an app with bound
  buffers) of the least a layer at each scale needs: its premultiplied image at that scale,
  reflect-padded, blurred with the disc of its run-time radius and composited "over" the
  accumulated image (a layer at full resolution: on the smallest disc grid that holds its
  radius, as the TF engine does). The premultiplied image is made either from the
  full-resolution mask (`from_full`: mask, multiply, s x s average pool) or from a stack of
  every layer already box-averaged 2 x 2 (`from_x2`: one segment sum for the photo, counted
  once, then an s/2 x s/2 pool), whichever makes the total smaller;
- the route's lower bound: the sum of those per-layer costs over the photo's layers. The colour
  conversions, the layer plan, the upsampling between scales and the final normalisation are
  left out (taken as free).

The staged route can reach the TF engine only if that bound is below the TF engine's time.
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


def layer_signatures(h, w, top):
    """A tf.Module with, per scale, the signatures of one layer's work (module docstring)."""
    import tensorflow as tf

    from pynet_bokeh.render import classical_tf as ct

    spec = tf.TensorSpec
    scalar = spec([1, 1])

    def blur_over(premult, radius, acc, half):
        """The export's own pad, disc blur and "over" (`classical_tf`, depthwise layout)."""
        if half == 0:  # radius <= 0.5: no blur
            return {"acc": ct._over(acc, premult)}
        padded = ct._pad(premult, half, "depthwise")
        layer = ct._blur_padded(padded, tf.reshape(radius, []), half, "depthwise")
        return {"acc": ct._over(acc, layer)}

    def masked(bins, data, b):
        return data * tf.nn.relu(1.0 - tf.abs(bins - b))  # integer bins: 1 where bin == b

    functions = {}

    def from_full(lv, half):
        s = 2**lv
        signature = [spec([1, h, w, 1]), spec([1, h, w, 4]), scalar, scalar]
        signature.append(spec([1, h // s, w // s, 4]))

        @tf.function(input_signature=signature)
        def layer(bins, data, b, radius, acc):
            premult = masked(bins, data, b)
            if s > 1:
                premult = tf.nn.avg_pool2d(premult, s, s, "VALID")
            return blur_over(premult, radius, acc, half)

        return layer

    def from_x2(lv):
        s, half = 2**lv, ct._half(ct.COARSE_RADIUS)
        signature = [spec([1, h // 2, w // 2, 4]), scalar, spec([1, h // s, w // s, 4])]

        @tf.function(input_signature=signature)
        def layer(layer_x2, radius, acc):
            premult = layer_x2 if s == 2 else tf.nn.avg_pool2d(layer_x2, s // 2, s // 2, "VALID")
            return blur_over(premult, radius, acc, half)

        return layer

    @tf.function(input_signature=[spec([1, h, w, 1], tf.int32), spec([1, h, w, 4])])
    def segment_sum(bins, data):
        return {"layers_x2": ct._layers_x2(bins, data, ct.MAX_LAYERS)}

    for half in range(ct._half(ct.FULL_RES_RADIUS) + 1):  # each disc grid a sharp layer uses
        functions[f"sharp_{half}"] = from_full(0, half)
    for lv in range(1, top + 1):
        functions[f"from_full_{lv}"] = from_full(lv, ct._half(ct.COARSE_RADIUS))
        functions[f"from_x2_{lv}"] = from_x2(lv)
    functions["segment_sum"] = segment_sum
    module = tf.Module()
    for name, fn in functions.items():
        setattr(module, name, fn)
    return module, functions


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", default=str(REPO.parent / "shared" / "ebb_samples"))
    parser.add_argument("--height", type=int, default=1024)
    parser.add_argument("--width", type=int, default=1536)
    parser.add_argument("--blur_fraction", type=float, default=0.02, help="K / long side")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import tensorflow as tf

    from pynet_bokeh import image_io
    from pynet_bokeh.bench_utils import best_time
    from pynet_bokeh.export import find_photo_depth_pairs, fit_to_size, make_interpreter
    from pynet_bokeh.render import classical_tf as ct
    from pynet_bokeh.renderers import get_renderer

    h, w = args.height, args.width
    photo_path, depth_path = find_photo_depth_pairs(args.photos)[0]
    photo = fit_to_size(image_io.read_photo(photo_path), (h, w))
    depth = fit_to_size(image_io.read_depth(depth_path)[..., None], (h // 2, w // 2))
    focus, k = (w / 2, h / 2), args.blur_fraction * max(h, w)
    top = ct._levels(h, w)

    # The TF engine's render time and the photo's layer plan (the engine's own).
    engine = get_renderer("classical", engine="tf")
    tf_seconds = best_time(
        lambda: engine.render(photo, depth[..., 0], focus=focus, blur=k), repeats=args.repeats
    )
    d_f = ct.focus_disparity_tf(depth[None], focus, (h, w))
    disparity = tf.image.resize(depth[None], (h, w), method="bilinear")
    _, _, _, mean_r, level, present = ct._layer_plan(disparity, d_f, k, ct.MAX_LAYERS, top)
    levels, radii = level.numpy()[present.numpy()], np.abs(mean_r.numpy()[present.numpy()])
    per_level = {lv: int(np.sum(levels == lv)) for lv in range(1, top + 1)}
    half0 = ct._half(ct.FULL_RES_RADIUS)
    sharp_halves = [min(ct._half(r), half0) for r in radii[levels == 0]]

    # Each signature's invoke time through LiteRT (XNNPACK), inputs in place.
    module, functions = layer_signatures(h, w, top)
    rng = np.random.default_rng(0)
    bins = rng.integers(0, ct.MAX_LAYERS, (1, h, w, 1))
    data = np.concatenate([rng.random((1, h, w, 3)), np.ones((1, h, w, 1))], -1)
    values = {
        "bins": bins.astype(np.float32),
        "data": data.astype(np.float32),
        "b": np.array([[3.0]], np.float32),
        "radius": np.array([[3.5]], np.float32),
        "layer_x2": data[:, ::2, ::2].astype(np.float32),
    }
    seconds = {}
    with tempfile.TemporaryDirectory(prefix="bench_stages_") as tmp:
        signatures = {name: fn.get_concrete_function() for name, fn in functions.items()}
        tf.saved_model.save(module, f"{tmp}/saved", signatures=signatures)
        converter = tf.lite.TFLiteConverter.from_saved_model(f"{tmp}/saved", list(signatures))
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        path = Path(tmp) / "stages.tflite"
        path.write_bytes(converter.convert())
        interpreter = make_interpreter(path)
        for name in functions:
            runner = interpreter.get_signature_runner(name)
            feeds = {}
            for key, details in runner.get_input_details().items():
                if key == "acc":
                    feeds[key] = np.zeros(details["shape"], np.float32)
                elif name == "segment_sum" and key == "bins":
                    feeds[key] = bins.astype(np.int32)
                else:
                    feeds[key] = values[key]
            runner(**feeds)  # inputs in place, warm
            # the runner has no public call for invoking without feeding the inputs again
            invoke = functools.partial(runner._interpreter_wrapper.Invoke, runner._subgraph_index)
            seconds[name] = best_time(invoke, repeats=args.repeats)
        del interpreter

    print(
        f"{photo_path.name} at {w} x {h}, K = {k:.1f} px, {os.cpu_count()} CPU threads, "
        f"best of {args.repeats} after a warm-up"
    )
    print(f"TF engine: {tf_seconds * 1e3:.0f} ms for {int(np.sum(present.numpy()))} layers")
    sharp_total = 0.0
    print(f"full resolution, {len(sharp_halves)} layers:")
    for half in range(half0 + 1):
        n = sharp_halves.count(half)
        sharp_total += n * seconds[f"sharp_{half}"]
        grid = f"{2 * half + 1} x {2 * half + 1} disc" if half else "no blur"
        print(f"  {grid:12s} {n:2d} layers x {seconds[f'sharp_{half}'] * 1e3:5.1f} ms")
    print(f"{'scale':>6s} {'layers':>7s} {'from_full ms':>13s} {'from_x2 ms':>11s}")
    full_total = x2_total = sharp_total
    for lv in range(1, top + 1):
        n, full, x2 = per_level[lv], seconds[f"from_full_{lv}"], seconds[f"from_x2_{lv}"]
        full_total += n * full
        x2_total += n * x2
        print(f"{2**lv:>6d} {n:>7d} {full * 1e3:13.1f} {x2 * 1e3:11.1f}")
    x2_total += seconds["segment_sum"]
    print(
        f"segment sum of every layer into 2 x 2 blocks (from_x2, once): "
        f"{seconds['segment_sum'] * 1e3:.0f} ms"
    )
    bound = min(full_total, x2_total)
    print(
        f"LiteRT layers alone: {full_total * 1e3:.0f} ms (from_full), {x2_total * 1e3:.0f} ms "
        f"(from_x2); the TF engine's whole render: {tf_seconds * 1e3:.0f} ms"
    )
    verdict = "could" if bound < tf_seconds else "cannot"
    print(
        f"best case of an app-driven LiteRT loop vs the TF engine: {tf_seconds / bound:.2f}x "
        f"(>= 1 needed): it {verdict} reach the TF engine on this CPU"
    )


if __name__ == "__main__":
    main()
