"""PyNET forward pass at the EBB! size: efficiency against this machine's matmul peak, peak RSS.

    python bench/forward.py [--height 512 --width 768 --repeats 3 --level 1]
    python bench/forward.py --memory_only --sizes 256x384,384x576,512x768   # memory growth

Prints the model's GFLOP count (multiply-add = 2, from its conv layers), the best forward time
after warm-up, the achieved GFLOP/s, the float32 matmul peak (4096 x 4096, best of several)
measured in the same process, and the ratio achieved / peak. Goals: ratio >= 0.85 on CPU
(issue 2); peak RSS <= 1.0 GB at 512 x 768 (issue 15). It also times the forward pass inside
the renderer's `returning_freed_heap` (heap trimming, interleaved with plain runs) and prints
the ratio plain / trimmed (>= 1: no slowdown), and the Keras call of the same level model
against the renderer's `grouped_forward` (ratio Keras / grouped: >= 1, no slowdown).

Peak RSS is measured on the renderer path an app or `pynet-bokeh render` takes:
`get_renderer("pynet", ...).render(photo, depth)` on one photo of twice the input's size (the
first of ../shared/ebb_samples resized, else a generated scene), each size in a fresh child
process (VmHWM: its own peak), with the TensorFlow import alone measured the same way; each peak
is also split into anonymous and file-backed (library pages) MB, sampled every 5 ms. With
--sizes it fits peak = a + b * pixels and prints the largest photo for 24 GB.
"""

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO.parent / "shared" / "ebb_samples"


def _status_mb(*keys):
    """The given /proc/self/status fields in MB (None where absent or without /proc)."""
    status = Path("/proc/self/status")
    lines = status.read_text().splitlines() if status.is_file() else []
    values = {}
    for line in lines:
        key, _, value = line.partition(":")
        if key in keys:
            values[key] = int(value.split()[0]) / 1024
    return [values.get(key) for key in keys]


def _vm_hwm_mb():
    (hwm,) = _status_mb("VmHWM")
    if hwm is None:
        from pynet_bokeh.bench_utils import peak_rss_mb

        return peak_rss_mb()
    return hwm


def _sample_peak_split(peak, interval_s=0.005):
    """Thread: keeps in `peak` the anonymous and file-backed MB at the highest VmRSS seen.

    File-backed pages (mostly TensorFlow's shared libraries) are clean: the kernel can drop
    them under memory pressure; anonymous memory (weights, feature maps, heap) it cannot.
    """
    import threading

    def sample():
        while True:
            rss, anon, file = _status_mb("VmRSS", "RssAnon", "RssFile")
            if rss > peak.get("rss", 0):
                peak.update(rss=rss, anon=anon, file=file)
            time.sleep(interval_s)

    if Path("/proc/self/status").is_file():
        threading.Thread(target=sample, daemon=True).start()


def _render_child(height, width, weights=None):
    """Child process: render one photo of 2 x (height, width) and print the peak RSS."""
    import numpy as np

    split = {}
    _sample_peak_split(split)

    def report():
        time.sleep(0.02)  # one more sample
        print(f"PEAK_MB {_vm_hwm_mb():.0f}")
        if split.get("anon") is not None:  # RssAnon: Linux 4.5 and later
            print(f"PEAK_SPLIT {split['anon']:.0f} {split['file']:.0f}")

    if height == 0:  # the TensorFlow import alone
        import tensorflow as tf  # noqa: F401

        report()
        return
    from pynet_bokeh import build_pynet, image_io
    from pynet_bokeh.renderers import get_renderer

    size = (2 * height, 2 * width)
    photos = sorted((SAMPLES / "images").glob("*.jpg")) if SAMPLES.is_dir() else []
    if photos:
        photo = image_io.read_photo(photos[0])
        depth = image_io.read_depth(SAMPLES / "depth_maps" / f"{photos[0].stem}.png")
        photo = np.clip(image_io.resize_bicubic(photo, size), 0, 1)
        depth = np.clip(image_io.resize_bicubic(depth[..., None], (height, width))[..., 0], 0, 1)
    else:
        rng = np.random.default_rng(0)
        photo = rng.random((*size, 3), dtype=np.float32)
        depth = rng.random((height, width), dtype=np.float32)
    if weights:
        renderer = get_renderer("pynet", weights=weights)
    else:
        renderer = get_renderer("pynet", model=build_pynet())
    out = renderer.render(photo, depth)
    assert out.shape == photo.shape, out.shape
    report()


def _fixture_weights(folder):
    """The seed-0 TF1 fixture checkpoint written into `folder`, or None without the script."""
    script = REPO.parent / "shared" / "fixtures" / "pynet_tf1" / "make_checkpoint.py"
    if not script.is_file():
        return None
    prefix = str(Path(folder) / "pynet_seed0")
    subprocess.run(
        [sys.executable, str(script), prefix, "--seed", "0"], check=True, capture_output=True
    )
    return prefix


def render_peak(height, width, weights=None):
    """(peak RSS, anonymous MB, file-backed MB at the sampled peak; the last two None where
    /proc gives no split) of a fresh process rendering one photo of 2 x (height, width) with
    get_renderer("pynet", weights=weights) (weights None: a freshly built PyNET)."""
    extra = ["--child_weights", weights] if weights else []
    result = subprocess.run(
        [sys.executable, __file__, "--render_child", f"{height}x{width}", *extra],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        check=False,
    )
    peak, split = None, (None, None)
    for line in result.stdout.splitlines():
        if line.startswith("PEAK_MB"):
            peak = float(line.split()[1])
        elif line.startswith("PEAK_SPLIT"):
            split = tuple(float(v) for v in line.split()[1:3])
    if peak is None:
        raise RuntimeError(f"render child failed:\n{result.stderr[-2000:]}")
    return (peak, *split)


def render_peak_mb(height, width, weights=None):
    """Peak RSS (MB) of `render_peak`."""
    return render_peak(height, width, weights)[0]


def _split_text(anon, file):
    if anon is None:
        return ""
    return f" (at the peak: anonymous {anon:.0f} MB, file-backed library pages {file:.0f} MB)"


def _size(text):
    h, w = (int(v) for v in text.lower().split("x"))
    return h, w


def memory_table(sizes):
    import tempfile

    import numpy as np

    base, *split = render_peak(0, 0)
    print(f"TensorFlow import alone: peak RSS {base:.0f} MB{_split_text(*split)}")
    tmp = tempfile.TemporaryDirectory(prefix="bench_forward_")
    weights = _fixture_weights(tmp.name)
    print(f"weights: {'TF1 fixture checkpoint, seed 0' if weights else 'freshly built PyNET'}")
    rows = []
    for h, w in sizes:
        peak, *split = render_peak(h, w, weights)
        rows.append((h, w, peak))
        print(
            f"photo {2 * h}x{2 * w} (input {h}x{w}): peak RSS {peak:.0f} MB{_split_text(*split)}",
            flush=True,
        )
    if len(rows) >= 2:
        pixels = np.array([h * w for h, w, _ in rows], float)
        peaks = np.array([p for _, _, p in rows])
        slope, intercept = np.polyfit(pixels, peaks, 1)
        budget = 24 * 1024 * 0.9  # leave 10% of 24 GB to the OS and the app
        max_pixels = (budget - intercept) / slope
        side = np.sqrt(max_pixels / 6)  # a 2:3 input
        print(
            f"fit: peak MB = {intercept:.0f} + {slope * 1e6:.1f} per input megapixel; "
            f"90% of 24 GB at {max_pixels / 1e6:.1f} input megapixels: about a "
            f"{int(4 * side) // 64 * 64}x{int(6 * side) // 64 * 64} photo (input "
            f"{int(2 * side) // 32 * 32}x{int(3 * side) // 32 * 32})"
        )
    tmp.cleanup()
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--height", type=int, default=512)
    parser.add_argument("--width", type=int, default=768)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--level", type=int, default=1)
    parser.add_argument("--memory_only", action="store_true", help="Skip the speed part.")
    parser.add_argument("--sizes", default=None, help="Input sizes for the memory fit, HxW,...")
    parser.add_argument("--render_child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--child_weights", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.render_child:
        _render_child(*_size(args.render_child), args.child_weights)
        return

    sizes = [_size(s) for s in args.sizes.split(",")] if args.sizes else []
    if (args.height, args.width) not in sizes:
        sizes.append((args.height, args.width))
    rows = memory_table(sizes)
    rss = next(p for h, w, p in rows if (h, w) == (args.height, args.width))
    if not args.memory_only:
        speed(args)
    print(
        f"peak RSS MB          {rss:10.0f}  (renderer path, photo {2 * args.height}x"
        f"{2 * args.width}; goal <= 1000)"
    )


def speed(args):
    import numpy as np
    import tensorflow as tf

    from pynet_bokeh import build_pynet, level_model
    from pynet_bokeh.bench_utils import best_time, count_flops, matmul_peak_gflops
    from pynet_bokeh.inference import level_function, returning_freed_heap

    full = build_pynet()
    forward = level_function(full, args.level)  # the renderer's compiled function
    # The Keras call of the same level model (what grouped_forward replaces), compiled alike.
    net = level_model(full, args.level)
    keras_call = tf.function(lambda t: net(t, training=False))
    flops = count_flops(net, (args.height, args.width, 4))
    x = tf.constant(np.random.default_rng(0).random((1, args.height, args.width, 4), np.float32))

    def trimmed():
        with returning_freed_heap():
            forward(x).numpy()

    # The renderer runs the forward inside returning_freed_heap: all timed, interleaved.
    forward(x).numpy()
    keras_call(x).numpy()
    seconds = trimmed_seconds = keras_seconds = float("inf")
    for _ in range(args.repeats):
        seconds = min(seconds, best_time(lambda: forward(x).numpy(), repeats=1, warmup=0))
        trimmed_seconds = min(trimmed_seconds, best_time(trimmed, repeats=1, warmup=0))
        keras_seconds = min(keras_seconds, best_time(lambda: keras_call(x).numpy(), 1, 0))
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
    print(
        f"heap trimming ratio  {seconds / trimmed_seconds:10.3f}  (forward time without / with "
        f"the renderer's returning_freed_heap, best of {args.repeats} each, interleaved)"
    )
    print(
        f"grouped forward ratio{keras_seconds / seconds:10.3f}  (Keras call time / the renderer's "
        f"grouped_forward, best of {args.repeats} each, interleaved; >= 1: no slowdown)"
    )


if __name__ == "__main__":
    main()
