"""Classical renderer: NumPy reference vs TensorFlow port vs LiteRT, at 1024 x 1536, one run.

    python bench/classical.py [--photos ../shared/ebb_samples] [--num_photos 12] [--repeats 2]

For each photo (centre-cropped / resized to --height x --width) and each K in --blur_fractions
(of the long side), renders with the NumPy reference, the TF port (`engine="tf"`:
XLA-compiled stages, the layer loop in Python) and the exported .tflite (one graph, focus point
and K as inputs), all on the same inputs.
Prints, per engine, the total best-of-`--repeats` time, the speed ratio to NumPy measured in
this process, and the PSNR of its output against NumPy (mean and worst over photos). Goals:
TF >= 4x NumPy, LiteRT >= TF, PSNR >= 40 dB.
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


def _psnr(a, b):
    """PSNR of one image against another (the package's metric, float64 MSE)."""
    from pynet_bokeh.metrics import psnr

    return float(psnr(a, b)[0])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", default=str(REPO.parent / "shared" / "ebb_samples"))
    parser.add_argument("--num_photos", type=int, default=12)
    parser.add_argument("--height", type=int, default=1024)
    parser.add_argument("--width", type=int, default=1536)
    parser.add_argument("--blur_fractions", default="0.02", help="K / long side, comma list")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--no_litert", action="store_true")
    args = parser.parse_args()

    import tensorflow as tf

    from pynet_bokeh import image_io
    from pynet_bokeh.bench_utils import best_time
    from pynet_bokeh.export import (
        export_tflite,
        find_photo_depth_pairs,
        fit_to_size,
        make_interpreter,
        run_tflite,
    )
    from pynet_bokeh.renderers import get_renderer

    h, w = args.height, args.width
    pairs = find_photo_depth_pairs(args.photos)[: args.num_photos]
    ref = get_renderer("classical")
    port = get_renderer("classical", engine="tf")
    interpreter = None
    if not args.no_litert:
        tmp = tempfile.TemporaryDirectory(prefix="bench_classical_")
        path = Path(tmp.name) / "classical.tflite"
        graph, kwargs = ref.export_spec(h, w)
        info = export_tflite(graph, path, check=False, **kwargs)
        interpreter = make_interpreter(path)
        print(
            f"classical.tflite: {info['size_bytes'] / 1024:.0f} KiB, ops {', '.join(info['ops'])}"
        )
    print(
        f"{len(pairs)} photos at {w} x {h}, K = {args.blur_fractions} x {max(h, w)}; "
        f"{os.cpu_count()} CPU threads; best of {args.repeats} after a warm-up"
    )
    times = {"numpy": 0.0, "tf": 0.0, "litert": 0.0}
    psnrs = {"tf": [], "litert": []}
    for photo_path, depth_path in pairs:
        photo = fit_to_size(image_io.read_photo(photo_path), (h, w))
        depth = fit_to_size(image_io.read_depth(depth_path)[..., None], (h // 2, w // 2))[..., 0]
        for frac in (float(f) for f in args.blur_fractions.split(",")):
            k = frac * max(h, w)
            focus = (w / 2, h / 2)
            run_ref = functools.partial(ref.render, photo, depth, focus=focus, blur=k)
            run_port = functools.partial(port.render, photo, depth, focus=focus, blur=k)
            expected = run_ref()
            times["numpy"] += best_time(run_ref, repeats=args.repeats)
            got = run_port()
            times["tf"] += best_time(run_port, repeats=args.repeats)
            psnrs["tf"].append(_psnr(got, expected))
            line = f"  {photo_path.name} K={k:.1f}: TF {psnrs['tf'][-1]:.1f} dB"
            if interpreter is not None:
                feeds = {
                    "image": photo[None],
                    "depth": depth[None, ..., None],
                    "focus_xy": np.array([focus], np.float32),
                    "blur": np.array([[k]], np.float32),
                }
                lite = run_tflite(interpreter, feeds)["image"][0]
                times["litert"] += best_time(
                    lambda f=feeds: run_tflite(interpreter, f), repeats=args.repeats
                )
                psnrs["litert"].append(_psnr(lite, expected))
                line += f", LiteRT {psnrs['litert'][-1]:.1f} dB"
            print(line, flush=True)
    del tf
    print()
    print(f"{'engine':8s} {'total s':>9s} {'vs NumPy':>9s} {'PSNR mean':>10s} {'PSNR min':>9s}")
    for engine in ("numpy", "tf", "litert"):
        if engine == "litert" and interpreter is None:
            continue
        p = psnrs.get(engine)
        ratio = times["numpy"] / times[engine]
        mean = "ref" if p is None else f"{np.mean(p):.1f} dB"
        low = "ref" if p is None else f"{np.min(p):.1f} dB"
        print(f"{engine:8s} {times[engine]:9.2f} {ratio:8.2f}x {mean:>10s} {low:>9s}")
    tf_ratio = times["numpy"] / times["tf"]
    ok = tf_ratio >= 4 and min(psnrs["tf"]) >= 40
    print(
        f"goal TF >= 4x NumPy at >= 40 dB: {'MET' if ok else 'NOT MET'} ({tf_ratio:.2f}x, "
        f"worst {min(psnrs['tf']):.1f} dB)"
    )
    if interpreter is not None:
        lite_ratio = times["tf"] / times["litert"]
        ok = lite_ratio >= 1 and min(psnrs["litert"]) >= 40
        print(
            f"goal LiteRT >= TF at >= 40 dB: {'MET' if ok else 'NOT MET'} ({lite_ratio:.2f}x TF, "
            f"worst {min(psnrs['litert']):.1f} dB)"
        )


if __name__ == "__main__":
    main()
