"""EBB! input pipeline at the real size: tf.data throughput against sequential decoding, and
peak memory against the data set's size.

    python bench/pipeline.py [--data_dir DIR --level 1 --patch_size 512 --samples 60]

1. Makes `--unique` synthetic scenes at the EBB! size (1024 x 1536 JPEG pairs, by
   `pynet_bokeh.data.synthetic`; cached in --data_dir) and data sets of `--small` and `--large`
   pairs from them (hard links under new stems, so the files are real and distinct by name).
2. Throughput, in one process: samples/s of plain sequential decoding (`image_io` reads the
   photo, depth map and bokeh, `ebb_input` downscales the photo, then the same crop / resize /
   rot-flip in NumPy, one sample after another) and of `ebb_dataset` (tf.data: parallel decode
   of only the needed window, AUTOTUNE, prefetch), both producing the same patches (the tests
   check the pipeline against `image_io.ebb_input`), timed in alternating `--rounds`, best of
   each. Prints the ratio; goal >= 1.8 on 2 cores.
3. Memory: peak RSS of a fresh process that validates and streams `--rss_samples` batches from
   the small set, and the same for the large set; goal: difference < 200 MB (memory does not
   grow with the data set's size, unlike a loader that holds every image in RAM).

Timings depend on what else runs on the machine: run it on an idle one, and read the ratios.
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

EBB_SIZE = (1024, 1536)
KINDS = (("original", ".jpg"), ("original_depth", ".png"), ("bokeh", ".jpg"))


def make_sets(data_dir, unique, sizes):
    """A cached synthetic base set and, for each n in `sizes`, a root with n linked pairs."""
    from pynet_bokeh.data.synthetic import ensure_synthetic

    base = ensure_synthetic(data_dir, n_train=unique, n_test=0, size=EBB_SIZE, seed=0)
    roots = {}
    for n in sizes:
        root = Path(data_dir) / f"pairs{n}_from{unique}"
        for kind, suffix in KINDS:
            folder = root / "train" / kind
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                dst = folder / f"{i}{suffix}"
                if not dst.exists():
                    src = base / "train" / kind / f"{i % unique}{suffix}"
                    try:
                        os.link(src, dst)
                    except OSError:
                        dst.write_bytes(src.read_bytes())
        roots[n] = root
    return roots


def sequential_rate(pairs, samples, patch, level, seed=0):
    """Samples/s of the straightforward loader: whole-image decode and resize, one at a time."""
    from pynet_bokeh import image_io

    rng = np.random.default_rng(seed)
    t = 2 * patch // 2 ** (level - 1)

    def one(pair):
        x = image_io.ebb_input(
            image_io.read_photo(pair.photo), image_io.read_depth(pair.depth), pair.depth
        )
        bokeh = image_io.read_photo(pair.bokeh)
        y0 = int(rng.integers(0, x.shape[0] - patch + 1))
        x0 = int(rng.integers(0, x.shape[1] - patch + 1))
        inp = x[y0 : y0 + patch, x0 : x0 + patch]
        tgt = bokeh[2 * y0 : 2 * (y0 + patch), 2 * x0 : 2 * (x0 + patch)]
        if t != 2 * patch:
            tgt = np.clip(image_io.resize_bicubic(tgt, (t, t)), 0, 1)
        k = int(rng.integers(0, 4))
        return np.rot90(inp, k).copy(), np.rot90(tgt, k).copy()

    one(pairs[0])  # warm-up (TF resize kernels)
    start = time.perf_counter()
    for i in range(samples):
        one(pairs[(i + 1) % len(pairs)])
    return samples / (time.perf_counter() - start)


def pipeline_rate(pairs, samples, patch, level, warmup=8):
    """Samples/s of `ebb_dataset` (batch 1) after `warmup` batches."""
    from pynet_bokeh.data.ebb import ebb_dataset

    ds = ebb_dataset(None, level=level, patch_size=patch, batch_size=1, seed=0, pairs=pairs)
    it = iter(ds)
    for _ in range(warmup):
        next(it)
    start = time.perf_counter()
    for _ in range(samples):
        next(it)
    return samples / (time.perf_counter() - start)


def current_rss_mb():
    """Resident set size of this process now (Linux /proc), in MB; 0 where unavailable."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return 0.0


def rss_child(root, samples, patch, level):
    """Runs in a fresh process: validate + stream, then print its memory use as JSON."""
    from pynet_bokeh.bench_utils import peak_rss_mb
    from pynet_bokeh.data.ebb import ebb_dataset, find_pairs, validate_pairs

    imported = current_rss_mb()
    start = time.perf_counter()
    pairs = validate_pairs(find_pairs(root, "train"))
    validated = time.perf_counter()
    ds = ebb_dataset(None, level=level, patch_size=patch, batch_size=1, seed=0, pairs=pairs)
    highest = current_rss_mb()
    for _ in ds.take(samples):
        highest = max(highest, current_rss_mb())
    result = {
        "peak_rss_mb": peak_rss_mb(),
        "rss_after_imports_mb": imported,
        "highest_rss_while_streaming_mb": highest,
        "validate_pairs_per_s": len(pairs) / (validated - start),
        "seconds": time.perf_counter() - start,
    }
    print(json.dumps(result))


def measure_rss(root, args):
    cmd = [
        sys.executable,
        __file__,
        "--rss_child",
        str(root),
        "--rss_samples",
        str(args.rss_samples),
        "--patch_size",
        str(args.patch_size),
        "--level",
        str(args.level),
    ]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data_dir", default=os.path.join("/tmp", "pynet_bokeh_bench"))
    parser.add_argument("--unique", type=int, default=10, help="distinct generated scenes")
    parser.add_argument("--small", type=int, default=50)
    parser.add_argument("--large", type=int, default=500)
    parser.add_argument("--level", type=int, default=1)
    parser.add_argument("--patch_size", type=int, default=512)
    parser.add_argument("--samples", type=int, default=60, help="timed pipeline samples")
    parser.add_argument("--baseline_samples", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=2, help="alternating timing rounds")
    parser.add_argument("--rss_samples", type=int, default=100)
    parser.add_argument("--rss_child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss_child:
        rss_child(args.rss_child, args.rss_samples, args.patch_size, args.level)
        return

    load = os.getloadavg()
    print(f"CPUs: {os.cpu_count()}; load average before: {load[0]:.2f} (the bench needs them idle)")
    start = time.perf_counter()
    roots = make_sets(args.data_dir, args.unique, (args.small, args.large))
    print(
        f"data: {args.unique} synthetic {EBB_SIZE[0]}x{EBB_SIZE[1]} scenes in {args.data_dir} "
        f"({time.perf_counter() - start:.0f} s, cached)"
    )

    from pynet_bokeh.data.ebb import find_pairs, validate_pairs

    pairs = validate_pairs(find_pairs(roots[args.small], "train"))
    t = 2 * args.patch_size // 2 ** (args.level - 1)
    print(
        f"sample: input {args.patch_size}x{args.patch_size}x4, target {t}x{t}x3 (level {args.level})"
    )
    # Alternating rounds, best of each: the machine's load changes from one moment to the next.
    # The pipeline is rebuilt for each round so its background threads are gone while the
    # sequential loader is timed.
    bases, fasts = [], []
    for r in range(args.rounds):
        bases.append(sequential_rate(pairs, args.baseline_samples, args.patch_size, args.level, r))
        fasts.append(pipeline_rate(pairs, args.samples, args.patch_size, args.level))
        print(f"round {r + 1}: sequential {bases[-1]:.2f}, ebb_dataset {fasts[-1]:.2f} samples/s")
    base, fast = max(bases), max(fasts)
    ratio = fast / base
    print(f"sequential decoding (image_io, one at a time): {base:.2f} samples/s (best)")
    print(f"ebb_dataset (tf.data, parallel window decode): {fast:.2f} samples/s (best)")
    print(
        f"throughput ratio: {ratio:.2f} (goal >= 1.8 on 2 cores): "
        f"{'PASS' if ratio >= 1.8 else 'FAIL'}"
    )

    small = measure_rss(roots[args.small], args)
    large = measure_rss(roots[args.large], args)
    for n, r in ((args.small, small), (args.large, large)):
        print(
            f"{n} pairs: peak RSS {r['peak_rss_mb']:.0f} MB; RSS after imports "
            f"{r['rss_after_imports_mb']:.0f} MB, highest while streaming "
            f"{r['highest_rss_while_streaming_mb']:.0f} MB; validation "
            f"{r['validate_pairs_per_s']:.1f} pairs/s; {r['seconds']:.0f} s in all"
        )
    diff = large["peak_rss_mb"] - small["peak_rss_mb"]
    growth = (
        large["highest_rss_while_streaming_mb"] - large["rss_after_imports_mb"],
        small["highest_rss_while_streaming_mb"] - small["rss_after_imports_mb"],
    )
    print(f"RSS difference: {diff:.0f} MB (goal < 200 MB): {'PASS' if diff < 200 else 'FAIL'}")
    print(
        f"growth above the imports: {growth[1]:.0f} MB ({args.small} pairs), {growth[0]:.0f} MB "
        f"({args.large} pairs)"
    )
    per_pair = (EBB_SIZE[0] * EBB_SIZE[1] * (4 / 4 + 3)) * 4 / 2**20
    print(
        f"(a loader holding the decoded set in RAM, as the authors', would need about "
        f"{per_pair * args.large / 1024:.1f} GB for {args.large} pairs in float32)"
    )
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
