"""DeepLens on one photo with a 1280 long side (the 4x path): seconds, GFLOPs and efficiency by module.

    python bench/deeplens.py [--height 960 --width 1280 --repeats 3] [--checkpoint PREFIX]

For each module (depth at 320 x 320, KernelNet and FeaNet at the working size, SR twice) prints
its GFLOP count (conv layers, multiply-add = 2), the best time of the compiled module after
warm-up, the achieved GFLOP/s and the ratio to the float32 matmul peak (4096^2) measured in the
same process; then the whole photo through `render_deeplens` (Python orchestration, INTER_AREA
pyramid, focus lookup, uint8 step) as seconds per photo, and peak RSS. Weights do not change
the timing; --checkpoint loads real ones if you have them.
"""

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from pynet_bokeh.bench_utils import (  # noqa: E402
    best_time,
    count_flops,
    matmul_peak_gflops,
    peak_rss_mb,
)
from pynet_bokeh.models.deeplens import (  # noqa: E402
    build_deeplens,
    deeplens_pyramid,
    load_deeplens_checkpoint,
    render_deeplens,
)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--height", type=int, default=960)
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--checkpoint", help="DeepLens checkpoint prefix (optional)")
    args = parser.parse_args()

    model = build_deeplens()
    if args.checkpoint:
        load_deeplens_checkpoint(model, args.checkpoint)
    rng = np.random.default_rng(0)
    photo = rng.random((args.height, args.width, 3)).astype(np.float32)
    _, levels, scale = deeplens_pyramid(photo)
    if scale != 4:
        parser.error(f"{args.width} x {args.height} does not take the 4x path (long side < 1280)")
    im = [tf.constant(lv[None]) for lv in levels]
    (h, w), (h2, w2), (h4, w4) = (lv.shape[:2] for lv in levels)
    signed = tf.constant(rng.random((1, h, w, 1)).astype(np.float32) - 0.5)
    signed2 = tf.image.resize(signed, (h2, w2))
    dof, dof2 = tf.constant(levels[0][None]), tf.constant(levels[1][None])

    def call(net):
        return tf.function(lambda *xs: net(list(xs) if len(xs) > 1 else xs[0], training=False))

    rows = [
        ("depth (320x320)", model.depth_net, (h, w, 3), [im[0]]),
        (f"lensblur ({h}x{w})", model.lensblur_net, [(h, w, 3), (h, w, 1)], [im[0], signed]),
        (f"feature ({h}x{w})", model.feature_net, (h, w, 3), [im[0]]),
        (
            f"sr pass 1 (->{h2}x{w2})",
            model.sr_net,
            [(h, w, 3), (h, w, 3), (h, w, 1), (h2, w2, 3)],
            [im[0], dof, signed, im[1]],
        ),
        (
            f"sr pass 2 (->{h4}x{w4})",
            model.sr_net,
            [(h2, w2, 3), (h2, w2, 3), (h2, w2, 1), (h4, w4, 3)],
            [im[1], dof2, signed2, im[2]],
        ),
    ]
    results = []
    for label, net, shape, inputs in rows:
        flops = count_flops(net, shape)
        fn = call(net)
        seconds = best_time(
            lambda fn=fn, inputs=inputs: tf.nest.map_structure(np.asarray, fn(*inputs)),
            repeats=args.repeats,
        )
        results.append((label, flops, seconds))
    photo_seconds = best_time(
        lambda: render_deeplens(model, photo, aperture=0.5), repeats=args.repeats, warmup=1
    )
    rss = peak_rss_mb()
    peak = matmul_peak_gflops(4096, repeats=5)

    print(f"photo {args.width}x{args.height} (4x path), threads: "
          f"intra {tf.config.threading.get_intra_op_parallelism_threads() or os.cpu_count()}")  # fmt: skip
    print(f"{'module':28s} {'GFLOP':>8s} {'seconds':>9s} {'GFLOP/s':>9s} {'/ peak':>7s}")
    total_flops = total_s = 0.0
    for label, flops, seconds in results:
        total_flops += flops
        total_s += seconds
        rate = flops / seconds / 1e9
        print(f"{label:28s} {flops / 1e9:8.2f} {seconds:9.3f} {rate:9.1f} {rate / peak:7.3f}")
    rate = total_flops / total_s / 1e9
    print(f"{'modules, compiled, sum':28s} {total_flops / 1e9:8.2f} {total_s:9.3f} {rate:9.1f} {rate / peak:7.3f}")  # fmt: skip
    print(f"seconds per photo (render_deeplens, whole pipeline): {photo_seconds:.3f}  "
          f"(modules' share {total_s / photo_seconds:.2f})")  # fmt: skip
    print(f"matmul peak GFLOP/s: {peak:.1f} (float32 4096^2, best of 5, same process)")
    print(f"peak RSS MB: {rss:.0f}")


if __name__ == "__main__":
    main()
