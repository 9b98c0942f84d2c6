"""Keras float32 vs LiteRT float32 / fp16 / dynamic / int8 at the EBB! size, in one run.

    python bench/export.py [--weights W.weights.h5 | --tf1_checkpoint PREFIX]
                           [--calibration_dir ../shared/ebb_samples] [--height 512 --width 768]

Prints, for each variant: file size, CPU latency (best of --repeats), speed-up over Keras
float32 measured in the same process, PSNR of its output against Keras float32 on real photos,
and Keras's achieved GFLOP/s as a fraction of this CPU's matmul peak. Variants: none, fp16,
dynamic, int8 (full int8: int8 weights and activations, float32 I/O), int8-uint8io (full int8
with uint8 input and output, fed and read through the scale and zero point the model records),
int8-level3float (selective: the ops of level 3, where the debugger ablation puts most of the
int8 error, kept in float), int8-mixed (selective: only the blocks of --float_blocks kept in
float; default `PYNET_INT8_FLOAT_BLOCKS`, the recommendation of docs/android.md section 8).
Each variant is timed alternating with Keras float32 (Keras, LiteRT, Keras, ...), so each
speed ratio comes from runs under the same load.

--search (instead of the variants): calibrates once and prints the quantization debugger's
per-layer error (RMSE in quantization steps) by block, the PSNR gain of keeping each block
alone in float (ablation), and then the PSNR, file size and speed ratio of the best blocks
kept in float together, adding one at a time until --target_psnr is reached.
int8 is calibrated on the first --num_calibration photos (sorted by name) and the PSNR is
measured on the next --num_eval photos, never on a calibration photo. Goal (issue 15): full int8
at least 2.5x faster than Keras float32 at >= 35 dB against it.

Without --weights / --tf1_checkpoint it uses the seed-0 weights of the TF1 fixture checkpoint
(`../shared/fixtures/pynet_tf1/make_checkpoint.py`): untrained, but with a non-trivial output
(std 0.26), so the PSNRs measure quantization error. Without a calibration folder it uses
generated scenes.
"""

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from absl import app, flags

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"

FLAGS = flags.FLAGS
flags.DEFINE_string("weights", None, "Package weights file (.weights.h5).")
flags.DEFINE_string("tf1_checkpoint", None, "The authors' TF1 checkpoint prefix.")
flags.DEFINE_string("calibration_dir", None, "Photos + depth maps (default ../shared/ebb_samples).")
flags.DEFINE_integer("height", 512, "Input height.")
flags.DEFINE_integer("width", 768, "Input width.")
flags.DEFINE_integer("level", 1, "PyNET level.")
flags.DEFINE_list(
    "variants",
    ["none", "fp16", "dynamic", "int8", "int8-uint8io", "int8-level3float", "int8-mixed"],
    "Quantizations to compare (int8-uint8io: full int8 with uint8 input and output; "
    "int8-level3float: int8 with level 3's ops kept in float; int8-mixed: int8 with the "
    "blocks of --float_blocks kept in float).",
)
flags.DEFINE_list(
    "float_blocks",
    None,
    "Blocks kept in float by int8-mixed, e.g. level3_mb9,level3_cat5 (default: "
    "pynet_bokeh.export.int8_search.PYNET_INT8_FLOAT_BLOCKS).",
)
flags.DEFINE_bool("search", False, "Per-block debugger statistics and float ablation instead.")
flags.DEFINE_list(
    "search_levels",
    ["level3"],
    "--search: levels whose blocks are tried one by one in float.",
)
flags.DEFINE_multi_string(
    "float_set",
    None,
    "--search: measure these float sets (each comma-separated blocks, e.g. level3 or "
    "level3_mb7,level3_mb8) instead of the ablation and the greedy additions.",
)
flags.DEFINE_float("target_psnr", 35.0, "--search: stop adding float blocks at this PSNR.")
flags.DEFINE_integer("max_float_blocks", 8, "--search: at most this many blocks in float.")
flags.DEFINE_integer("num_calibration", 6, "Calibration photos for int8 (the first, by name).")
flags.DEFINE_integer("num_eval", 6, "Photos after the calibration ones, for the PSNR.")
flags.DEFINE_integer("repeats", 2, "Timed runs per engine (best is reported), after a warm-up.")
flags.DEFINE_string("out_dir", None, "Keep the .tflite files and a bench.json here.")


def _load_model(tmp):
    from pynet_bokeh import build_pynet
    from pynet_bokeh.renderers.pynet import load_pynet

    if FLAGS.weights or FLAGS.tf1_checkpoint:
        return load_pynet(FLAGS.weights or FLAGS.tf1_checkpoint), "given"
    script = SHARED / "fixtures" / "pynet_tf1" / "make_checkpoint.py"
    if script.is_file():
        prefix = os.path.join(tmp, "pynet_seed0")
        subprocess.run(
            [sys.executable, str(script), prefix, "--seed", "0"], check=True, capture_output=True
        )
        return load_pynet(prefix), "TF1 fixture checkpoint, seed 0 (untrained)"
    print("WARNING: no weights and no fixture script: random initial weights; PSNRs are weak.")
    return build_pynet(), "random initialisation"


def _inputs(size, count):
    """(samples, where from, their names)."""
    from pynet_bokeh.export import find_photo_depth_pairs, photo_samples, synthetic_samples

    folder = FLAGS.calibration_dir or (SHARED / "ebb_samples")
    if Path(folder).is_dir():
        names = [p.stem for p, _ in find_photo_depth_pairs(folder)][:count]
        return photo_samples(folder, size, count), f"photos from {folder}", names
    return synthetic_samples(size, count), "generated scenes", [f"scene {i}" for i in range(count)]


def _mixed_blocks():
    from pynet_bokeh.export.int8_search import PYNET_INT8_FLOAT_BLOCKS

    return list(FLAGS.float_blocks or PYNET_INT8_FLOAT_BLOCKS)


def _litert_psnr(interpreter, evals, reference):
    from pynet_bokeh.export import run_tflite

    outs = [run_tflite(interpreter, {"image_depth": x})["bokeh"] for x in evals]
    return float(np.mean([_psnr(o, r) for o, r in zip(outs, reference, strict=True)]))


def _search(net, size, calibration, evals, reference, keras_run):
    """--search: see the module docstring."""
    from pynet_bokeh.bench_utils import alternating_best_times
    from pynet_bokeh.export import make_interpreter, run_tflite
    from pynet_bokeh.export.int8_search import CalibratedInt8, block_of, float_nodes_of

    start = time.perf_counter()
    calibrated = CalibratedInt8(net, calibration, *size)
    print(f"calibrated once in {time.perf_counter() - start:.0f} s", flush=True)
    stats = calibrated.layer_statistics()
    by_block = {}
    for name, row in stats.items():
        if "rmse/scale" in row:
            by_block.setdefault(block_of(name) or "(other)", []).append(row["rmse/scale"])
    print("\nper-layer int8 error (RMSE / scale; rounding alone 0.29), by block:")
    print(f"{'block':16s} {'ops':>4s} {'median':>7s} {'max':>6s}")
    for block, values in by_block.items():
        print(f"{block:16s} {len(values):4d} {np.median(values):7.2f} {max(values):6.2f}")
    worst = sorted(
        ((row["rmse/scale"], name) for name, row in stats.items() if "rmse/scale" in row),
        reverse=True,
    )[:10]
    print("largest: " + "; ".join(f"{n} {v:.2f}" for v, n in worst))

    def measure(blocks, timed=False):
        t0 = time.perf_counter()
        content = calibrated.quantize(float_nodes_of(calibrated.nodes, blocks))
        interpreter = make_interpreter(content)
        row = {
            "float_blocks": list(blocks),
            "size_mb": len(content) / 2**20,
            "psnr_db": _litert_psnr(interpreter, evals, reference),
            "convert_s": time.perf_counter() - t0,
        }
        if timed:
            keras_s, latency = alternating_best_times(
                [keras_run, lambda: run_tflite(interpreter, {"image_depth": evals[0]})],
                repeats=FLAGS.repeats,
            )
            row.update(latency_s=latency, keras_latency_s=keras_s, speedup=keras_s / latency)
        return row

    base = measure([], timed=True)
    print(
        f"\nfull int8: {base['psnr_db']:.2f} dB, {base['size_mb']:.1f} MB, "
        f"{base['speedup']:.2f}x Keras ({base['convert_s']:.0f} s to quantize)",
        flush=True,
    )
    if FLAGS.float_set:
        print(f"\n{'float blocks':60s} {'MB':>6s} {'PSNR dB':>8s} {'vs Keras':>9s}")
        rows = [base]
        for blocks in FLAGS.float_set:
            rows.append(measure(blocks.split(","), timed=True))
            _print_row(rows[-1])
        return {"cumulative": rows, "equalized": calibrated.equalized_branches}
    blocks = []
    for _, name in calibrated.nodes:
        block = block_of(name)
        if block and block.split("_")[0] in FLAGS.search_levels and block not in blocks:
            blocks.append(block)
    print(f"\nablation: one block in float ({len(blocks)} blocks)")
    gains = {}
    for block in blocks:
        row = measure([block])
        gains[block] = row["psnr_db"] - base["psnr_db"]
        print(f"  {block:16s} {row['psnr_db']:6.2f} dB ({gains[block]:+.2f})", flush=True)
    ranked = sorted(gains, key=gains.get, reverse=True)
    print(f"\nbest blocks kept in float together (until {FLAGS.target_psnr} dB):")
    print(f"{'float blocks':60s} {'MB':>6s} {'PSNR dB':>8s} {'vs Keras':>9s}")
    rows = [base]
    for k in range(1, FLAGS.max_float_blocks + 1):
        row = measure(ranked[:k], timed=True)
        rows.append(row)
        _print_row(row)
        if row["psnr_db"] >= FLAGS.target_psnr:
            break
    return {"ablation_db": gains, "cumulative": rows, "equalized": calibrated.equalized_branches}


def _print_row(row):
    print(
        f"{','.join(row['float_blocks']):60s} {row['size_mb']:6.1f} {row['psnr_db']:8.2f} "
        f"{row['speedup']:8.2f}x",
        flush=True,
    )


def _psnr(a, b):
    """PSNR of one image against another (the package's metric, float64 MSE)."""
    from pynet_bokeh.metrics import psnr

    return float(psnr(a, b)[0])


def main(argv):
    del argv
    import tensorflow as tf

    from pynet_bokeh.bench_utils import (
        alternating_best_times,
        best_time,
        count_flops,
        matmul_peak_gflops,
        peak_rss_mb,
    )
    from pynet_bokeh.export import export_tflite, make_interpreter, run_tflite, serving_model

    size = (FLAGS.height, FLAGS.width)
    tmp_holder = tempfile.TemporaryDirectory(prefix="bench_export_")
    out_dir = Path(FLAGS.out_dir or tmp_holder.name)
    out_dir.mkdir(parents=True, exist_ok=True)
    model, weights_note = _load_model(tmp_holder.name)
    net = serving_model(model, FLAGS.level)
    n_cal = FLAGS.num_calibration
    samples, source, names = _inputs(size, n_cal + FLAGS.num_eval)
    if len(samples) <= n_cal:
        raise SystemExit(f"error: {len(samples)} photos: need more than --num_calibration {n_cal}")
    calibration = [{"image_depth": x[None]} for x in samples[:n_cal]]
    evals = [x[None] for x in samples[n_cal:]]
    print(f"PyNET level {FLAGS.level}, input 1x{size[0]}x{size[1]}x4; weights: {weights_note}")
    print(f"inputs: {source}; {os.cpu_count()} CPU threads")
    print(f"int8 calibration: {', '.join(names[:n_cal])}; PSNR on: {', '.join(names[n_cal:])}")

    peak = matmul_peak_gflops()
    flops = count_flops(net, (*size, 4))
    keras_fn = tf.function(lambda x: net(x, training=False))
    reference = [keras_fn(tf.constant(x)).numpy() for x in evals]
    x0 = tf.constant(evals[0])
    keras_s = best_time(lambda: keras_fn(x0).numpy(), repeats=FLAGS.repeats)
    keras_gflops = flops / keras_s / 1e9
    print(f"matmul peak {peak:.0f} GFLOP/s; PyNET {flops / 1e12:.3f} TFLOP per input")
    if FLAGS.search:
        found = _search(net, size, calibration, evals, reference, lambda: keras_fn(x0).numpy())
        if FLAGS.out_dir:
            found.update(weights=weights_note, eval_photos=names[n_cal:])
            (out_dir / "search.json").write_text(json.dumps(found, indent=2) + "\n")
        tmp_holder.cleanup()
        return
    rows = [
        {
            "variant": "keras float32",
            "size_mb": None,
            "latency_s": keras_s,
            "speedup": 1.0,
            "psnr_db": float("inf"),
        }
    ]
    for variant in FLAGS.variants:
        q, _, option = variant.partition("-")
        io = option.removesuffix("io") if option.endswith("io") else "float32"
        float_blocks = ()
        if option == "level3float":
            float_blocks = ("level3",)
        elif option == "mixed":
            float_blocks = tuple(_mixed_blocks())
        path = out_dir / f"pynet_l{FLAGS.level}_{variant}.tflite"
        info = export_tflite(
            net,
            path,
            q,
            *size,
            calibration_data=calibration if q == "int8" else None,
            check=False,
            io_type=io,
            float_blocks=float_blocks,
        )
        interpreter = make_interpreter(path)
        psnr = _litert_psnr(interpreter, evals, reference)
        keras_here, latency = alternating_best_times(
            [
                lambda: keras_fn(x0).numpy(),
                lambda i=interpreter: run_tflite(i, {"image_depth": evals[0]}),
            ],
            repeats=FLAGS.repeats,
        )
        rows.append(
            {
                "variant": f"litert {variant}",
                "size_mb": info["size_bytes"] / 2**20,
                "latency_s": latency,
                "keras_latency_s": keras_here,
                "speedup": keras_here / latency,
                "psnr_db": psnr,
                "float_blocks": _mixed_blocks() if option == "mixed" else None,
            }
        )
        print(
            f"  {variant}: {latency:.2f} s, {keras_here / latency:.2f}x Keras "
            f"(Keras {keras_here:.2f} s alongside), {psnr:.2f} dB",
            flush=True,
        )
        del interpreter

    print()
    print(
        f"{'variant':20s} {'file MB':>8s} {'latency s':>10s} {'Keras s':>8s} "
        f"{'vs Keras fp32':>14s} {'PSNR vs Keras fp32':>19s}"
    )
    for r in rows:
        size_mb = "-" if r["size_mb"] is None else f"{r['size_mb']:.1f}"
        psnr = "ref" if r["psnr_db"] == float("inf") else f"{r['psnr_db']:.2f} dB"
        keras_here = r.get("keras_latency_s", r["latency_s"])
        print(
            f"{r['variant']:20s} {size_mb:>8s} {r['latency_s']:>10.2f} {keras_here:>8.2f} "
            f"{r['speedup']:>13.2f}x {psnr:>19s}"
        )
    print(
        f"\nKeras float32: {keras_gflops:.0f} GFLOP/s = {keras_gflops / peak:.2f} of the matmul "
        f"peak; peak RSS {peak_rss_mb():.0f} MB"
    )
    for int8 in (r for r in rows if r["variant"].startswith("litert int8")):
        ok = int8["speedup"] >= 2.5 and int8["psnr_db"] >= 35.0
        print(
            f"goal ({int8['variant']} >= 2.5x Keras float32 at >= 35 dB): "
            f"{'MET' if ok else 'NOT MET'} ({int8['speedup']:.2f}x, {int8['psnr_db']:.2f} dB)"
        )
    result = {
        "input": [1, *size, 4],
        "level": FLAGS.level,
        "weights": weights_note,
        "inputs": source,
        "calibration_photos": names[:n_cal],
        "eval_photos": names[n_cal:],
        "threads": os.cpu_count(),
        "matmul_peak_gflops": peak,
        "tflop_per_input": flops / 1e12,
        "keras_gflops": keras_gflops,
        "rows": rows,
    }
    if FLAGS.out_dir:
        (out_dir / "bench.json").write_text(json.dumps(result, indent=2) + "\n")
    tmp_holder.cleanup()


if __name__ == "__main__":
    app.run(main)
