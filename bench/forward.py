"""PyNET forward pass at the EBB! size: efficiency against this machine's matmul peak, peak RSS.

    python bench/forward.py [--height 512 --width 768 --repeats 3 --level 1]

Prints the model's GFLOP count (multiply-add = 2, from its conv layers), the best forward time
after warm-up, the achieved GFLOP/s, the float32 matmul peak (4096 x 4096, best of several)
measured in the same process, and the ratio achieved / peak. Goals (issue 2): ratio >= 0.85 on
CPU; peak RSS < 1.5 GB. Peak RSS is read after the forward passes and before the matmul test.
"""

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from pynet_bokeh import build_pynet, level_model  # noqa: E402
from pynet_bokeh.bench_utils import (  # noqa: E402
    best_time,
    count_flops,
    matmul_peak_gflops,
    peak_rss_mb,
)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--height", type=int, default=512)
    parser.add_argument("--width", type=int, default=768)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--level", type=int, default=1)
    args = parser.parse_args()

    full = build_pynet()
    model = level_model(full, args.level)
    flops = count_flops(model, (args.height, args.width, 4))
    x = tf.constant(np.random.default_rng(0).random((1, args.height, args.width, 4), np.float32))
    forward = tf.function(lambda t: model(t, training=False))
    seconds = best_time(lambda: forward(x).numpy(), repeats=args.repeats, warmup=1)
    rss = peak_rss_mb()
    peak = matmul_peak_gflops(4096, repeats=5)
    achieved = flops / seconds / 1e9
    print(
        f"input {args.height}x{args.width}x4, level {args.level}, threads: "
        f"intra {tf.config.threading.get_intra_op_parallelism_threads() or os.cpu_count()}"
    )
    print(f"model GFLOP          {flops / 1e9:10.1f}")
    print(f"forward seconds      {seconds:10.3f}  (best of {args.repeats} after warm-up)")
    print(f"achieved GFLOP/s     {achieved:10.1f}")
    print(f"matmul peak GFLOP/s  {peak:10.1f}  (float32 4096^2, best of 5, same process)")
    print(f"efficiency ratio     {achieved / peak:10.3f}  (goal >= 0.85)")
    print(f"peak RSS MB          {rss:10.0f}  (goal < 1536)")


if __name__ == "__main__":
    main()
