"""MegaDepth depth maps for EBB! photos: seconds per photo, GFLOPs, efficiency vs matmul peak.

    python bench/depth.py [--height 1024 --width 1536 --working_size 512 --photos 3]
                          [--repeats 3] [--weights best_generalization_net_G.pth]

Prints, at the default working size (the photo's long side scaled to 512, sides multiples of
16: 336 x 512 for a 1024 x 1536 EBB! photo): the network's GFLOP count (conv layers,
multiply-add = 2), the best compiled forward time after warm-up, the achieved GFLOP/s and its
ratio to the float32 matmul peak (4096^2, best of runs before and after) measured in the same
process; then seconds per photo for the whole `depth_tools.generate` path (JPEG decode, resize,
network, inverse depth, resize to half size, PNG write) over --photos synthetic JPEGs, and the
network's share of it. Weights do not change the timing (random ones by default).
"""

import argparse
import os
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from depth_tools import build_megadepth, load_megadepth_weights  # noqa: E402
from depth_tools.generate import (  # noqa: E402
    DEFAULT_WORKING_SIZE,
    generate_depth_maps,
    megadepth_source,
    plan_jobs,
    working_size,
)
from depth_tools.megadepth import MEGADEPTH_MULTIPLE  # noqa: E402
from pynet_bokeh.bench_utils import (  # noqa: E402
    best_time,
    count_flops,
    matmul_peak_gflops,
    peak_rss_mb,
)
from pynet_bokeh.image_io import write_image  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--height", type=int, default=1024, help="photo height (EBB!: 1024)")
    parser.add_argument("--width", type=int, default=1536, help="photo width (EBB!: 1536)")
    parser.add_argument("--working_size", type=int, default=DEFAULT_WORKING_SIZE)
    parser.add_argument("--photos", type=int, default=3, help="photos for the end-to-end time")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--weights", help="MegaDepth .pth / .weights.h5 (optional)")
    args = parser.parse_args()

    peak_before = matmul_peak_gflops(4096, repeats=5)
    model = build_megadepth()
    if args.weights:
        load_megadepth_weights(model, args.weights)
    h, w = working_size(args.height, args.width, args.working_size, MEGADEPTH_MULTIPLE)
    flops = count_flops(model, (h, w, 3))
    source = megadepth_source(model)
    x = np.random.default_rng(0).random((1, h, w, 3), dtype=np.float32)
    net_s = best_time(lambda: source.predict(x), repeats=args.repeats, warmup=1)

    with tempfile.TemporaryDirectory() as tmp:
        rng = np.random.default_rng(1)
        for i in range(args.photos):  # smooth random photos: realistic JPEG decode cost
            small = rng.random((args.height // 32, args.width // 32, 3)).astype(np.float32)
            photo = tf.image.resize(small, (args.height, args.width), "bicubic").numpy()
            write_image(Path(tmp) / "original" / f"{i}.jpg", np.clip(photo, 0, 1))
        jobs = plan_jobs(Path(tmp) / "original")
        run = lambda: generate_depth_maps(  # noqa: E731
            jobs, source, args.working_size, batch_size=1, overwrite=True, progress=False
        )
        photo_s = best_time(run, repeats=max(1, args.repeats - 1), warmup=1) / args.photos
    rss = peak_rss_mb()
    # Best of before and after: on a shared machine a busy moment lowers either measurement.
    peak = max(peak_before, matmul_peak_gflops(4096, repeats=5))

    rate = flops / net_s / 1e9
    threads = tf.config.threading.get_intra_op_parallelism_threads() or os.cpu_count()
    print(f"photo {args.width}x{args.height}, working size {w}x{h} (long side "
          f"{args.working_size}, multiple of {MEGADEPTH_MULTIPLE}), threads {threads}")  # fmt: skip
    print(f"network GFLOP: {flops / 1e9:.2f}")
    print(f"network seconds (compiled, best of {args.repeats}): {net_s:.3f}")
    print(f"network GFLOP/s: {rate:.1f}  / matmul peak: {rate / peak:.3f}")
    print(f"seconds per EBB! photo (generate, end to end): {photo_s:.3f}  "
          f"(network share {net_s / photo_s:.2f})")  # fmt: skip
    print(f"matmul peak GFLOP/s: {peak:.1f} (float32 4096^2, best of 5 before and 5 after)")
    print(f"load average (1 min) at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"peak RSS MB: {rss:.0f}")


if __name__ == "__main__":
    main()
