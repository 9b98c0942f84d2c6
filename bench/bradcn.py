"""BRADCN `paper` config on this CPU at 512 x 768: seconds, GFLOPs, efficiency, peak RSS.

    python bench/bradcn.py [--height 512 --width 768 --repeats 2 --config paper --inject shared]

Prints the GFLOP count (multiply-add = 2) by part: conv and dense layers from
`bench_utils.count_flops` (counted on the `separate`-encoder build, which runs the same three
encoder passes as `shared` but as distinct layers, so none is counted once for three), plus the
attention matmuls (QK^T and AV: 4 T^2 D per block and pass, T = 1 + HW/256 tokens), which are
not layers; then the best time of the compiled forward pass (batch 1, after warm-up), the
achieved GFLOP/s and its ratio to the float32 matmul peak (4096^2) measured in the same process,
and the peak RSS. Random weights: they do not change the timing.
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
from pynet_bokeh.models.bradcn import bradcn_config, build_adcn, build_bradcn  # noqa: E402
from pynet_bokeh.models.dpt import build_dpt, dpt_config  # noqa: E402


def attention_flops(cfg, height, width, passes):
    """QK^T and AV of every block, for `passes` encoder passes."""
    tokens = 1 + (height // cfg["patch"]) * (width // cfg["patch"])
    blocks = max(cfg["hooks"]) + 1
    return passes * blocks * 4 * tokens**2 * cfg["embed_dim"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--height", type=int, default=512)
    parser.add_argument("--width", type=int, default=768)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--config", default="paper", choices=["paper", "tiny"])
    parser.add_argument("--inject", default="shared", choices=["shared", "separate", "light"])
    args = parser.parse_args()
    if args.height % 32 or args.width % 32:
        parser.error("--height and --width must be multiples of 32")
    hw = (args.height, args.width)

    peak = matmul_peak_gflops()
    cfg = bradcn_config(args.config, inject_encoder=args.inject)
    render_cfg, depth_cfg = dpt_config(cfg["render"]), dpt_config(cfg["depth"])

    # FLOPs by part; the whole model counted on a build with distinct encoder copies.
    passes = 3 if args.inject != "light" else 1
    count_cfg = "separate" if args.inject == "shared" else args.inject
    counting = build_bradcn(args.config, inject_encoder=count_cfg)
    layer_flops = count_flops(counting, (*hw, 3))
    del counting
    attn = attention_flops(render_cfg, *hw, passes) + attention_flops(depth_cfg, *hw, 1)
    parts = {
        "depth net (DPT)": count_flops(build_dpt(cfg["depth"]), (*hw, 3))
        + attention_flops(depth_cfg, *hw, 1),
        "ADCN": count_flops(build_adcn(cfg["adcn_base"], cfg["adcn_levels"]), (*hw, 4)),
    }
    total = layer_flops + attn
    parts[f"render net (encoder x{passes} + decoder), Adap"] = (
        total - parts["depth net (DPT)"] - parts["ADCN"]
    )

    model = build_bradcn(args.config, inject_encoder=args.inject)
    x = tf.constant(np.random.default_rng(0).random((1, *hw, 3), dtype=np.float32))
    forward = tf.function(lambda t: model(t, training=False)["bokeh"])
    seconds = best_time(lambda: forward(x).numpy(), repeats=args.repeats, warmup=1)
    achieved = total / seconds / 1e9

    print(f"BRADCN {args.config} ({args.inject} injection), input 1 x {hw[0]} x {hw[1]} x 3")
    print(f"  parameters: {model.count_params() / 1e6:.1f} M")
    for name, flops in parts.items():
        print(f"  {name:<44s} {flops / 1e9:9.1f} GFLOP")
    print(
        f"  {'total (of which attention matmuls)':<44s} {total / 1e9:9.1f} GFLOP ({attn / 1e9:.1f})"
    )
    print(f"  forward pass: {seconds:.2f} s (best of {args.repeats}, compiled, batch 1)")
    print(f"  achieved {achieved:.1f} GFLOP/s; float32 matmul peak {peak:.1f} GFLOP/s")
    print(f"  efficiency: {achieved / peak:.2f} of the matmul peak")
    print(f"  peak RSS: {peak_rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
