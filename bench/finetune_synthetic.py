"""Fine-tunes the end of PyNET on the synthetic set with the rest frozen: weights that render an
image in minutes on a CPU, for measurements (int8, speed) that need a real image.

    python bench/finetune_synthetic.py --init_from PREFIX --output FT.weights.h5 \\
        [--train_from level3_mb9] [--standardize] [--steps 600] [--batch_size 8] [--crop 32] \\
        [--learning_rate 1e-3] [--level2_loss 1] [--head_steps N --head_learning_rate 1e-2]
    python bench/finetune_synthetic.py --evaluate W [W2 ...]     # the metrics below only

docs/android.md section 8 has the three runs that made the weights it measures int8 on.

PREFIX: any weights `--init_from` of train_level.py takes (the seed-0 TF1 fixture:
`../shared/fixtures/pynet_tf1/make_checkpoint.py PREFIX --seed 0`). Every layer before
--train_from stays frozen, so their outputs (the cut tensors) are computed once per training
photo (--features_cache keeps them for a rerun from weights with the same frozen part), on the
whole 128 x 192 inputs of the set `train_level.py --synthetic` trains on (64 train, 8 test scenes,
made on first use in $XDG_CACHE_HOME/pynet_bokeh). Only the layers from --train_from to level 1's
output are trained, on random --crop crops of those tensors and the matching target crops, with
the authors' level-1 loss without VGG (10 L1 + 10 (1 - SSIM)) plus --level2_loss x level 2's
(100 L1 against the target at half size), Adam with the learning rate decayed (cosine) from
--learning_rate to 5% of it over --steps. --standardize: see `standardize_inputs`.
--head_steps N: then N steps of level 1's up-convolution and head alone (`train_level1_head`).

--train_from level3_mb9: level 3's last block mb9 and the level 2 / level 1 up-convolutions and
heads (cut: level3_cat5); level3_mb7: also mb7 and mb8 (cuts: mb6's sum, level3_enc's output,
level4_up_b; 10x slower a step). The other layers keep their initial weights.

Metrics (printed for the initial and the final weights, and by --evaluate): on the 8 held-out
synthetic test scenes (whole images, level 1), PSNR of the output against the physical bokeh
target, and of the all-in-focus photo itself against it; on the 12 EBB! sample photos (resized
to --ebb_size, through `get_renderer("pynet")`), PSNR of the output against the input photo and
the output's standard deviation (a grey output has ~0).
"""

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO.parent / "shared" / "ebb_samples"

# --train_from: the tensors computed once (frozen layers before them) and fed to the trained part.
CUTS = {
    "level3_mb7": ("level3_mb6_add", "level3_enc_conv3b_act", "level4_up_b_act"),
    "level3_mb9": ("level3_cat5",),
}


def synthetic_root():
    from pynet_bokeh.data.synthetic import ensure_synthetic
    from pynet_bokeh.training.config import SYNTHETIC_SET, default_cache_dir

    return ensure_synthetic(default_cache_dir(), **SYNTHETIC_SET)


def load_model(path):
    from pynet_bokeh.models.pynet import build_pynet
    from pynet_bokeh.training.checkpointing import load_initial_weights

    model = build_pynet()
    try:
        print(f"{path}: {load_initial_weights(model, path)}", flush=True)
    except (OSError, ValueError) as err:  # a missing or unreadable file: one line, no traceback
        raise SystemExit(f"error: {err}") from None
    return model


def whole_images(root, split):
    """[(input 1 x h x w x 4, target 1 x 2h x 2w x 3, photo 2h x 2w x 3)] of a split."""
    from pynet_bokeh.data.ebb import ebb_eval_dataset, find_pairs
    from pynet_bokeh.image_io import read_photo

    pairs = find_pairs(root, split)
    out = []
    for pair, (x, y) in zip(pairs, ebb_eval_dataset(root, split, level=1), strict=True):
        photo = read_photo(pair.photo)[: y.shape[1], : y.shape[2]]
        out.append((x.numpy(), y.numpy(), photo))
    return out


def psnr(a, b):
    """PSNR of one image against another, both clipped to [0, 1] (the package's metric)."""
    from pynet_bokeh.metrics import psnr as image_psnr

    return float(image_psnr(np.clip(a, 0, 1), np.clip(b, 0, 1))[0])


def ebb_photos(size):
    from pynet_bokeh.image_io import read_depth, read_photo, resize_bicubic

    photos = []
    for path in sorted((SAMPLES / "images").glob("*.jpg"), key=lambda p: int(p.stem)):
        photo = np.clip(resize_bicubic(read_photo(path), size), 0, 1)
        depth = read_depth(SAMPLES / "depth_maps" / f"{path.stem}.png")
        depth = np.clip(resize_bicubic(depth, (size[0] // 2, size[1] // 2)), 0, 1)
        photos.append((path.stem, photo, depth))
    return photos


def evaluate(model, test, ebb):
    """Prints and returns the metrics of the module docstring."""
    from pynet_bokeh.inference import level_function
    from pynet_bokeh.renderers import get_renderer

    run = level_function(model, 1)
    out_t, photo_t = [], []
    for x, y, photo in test:
        pred = np.asarray(run(x))[0]
        out_t.append(psnr(pred, y[0]))
        photo_t.append(psnr(photo, y[0]))
    line = (
        f"synthetic test ({len(test)} scenes): output vs target {np.mean(out_t):.2f} dB "
        f"(photo vs target {np.mean(photo_t):.2f} dB)"
    )
    metrics = {"test_psnr": float(np.mean(out_t)), "photo_psnr": float(np.mean(photo_t))}
    if ebb:
        renderer = get_renderer("pynet", model=model)
        vs_photo, stds = [], []
        for _stem, photo, depth in ebb:
            out = renderer.render(photo, depth)
            vs_photo.append(psnr(out, photo))
            stds.append(float(np.std(out)))
        line += (
            f"; EBB! photos ({len(ebb)}, {ebb[0][1].shape[0]}x{ebb[0][1].shape[1]}): output vs "
            f"photo {np.mean(vs_photo):.2f} dB (min {np.min(vs_photo):.2f}), output std "
            f"{np.mean(stds):.3f} (photos {np.mean([np.std(p) for _, p, _ in ebb]):.3f})"
        )
        metrics.update(ebb_psnr=float(np.mean(vs_photo)), ebb_std=float(np.mean(stds)))
    print(line, flush=True)
    return metrics


def trained_part(model, train_from):
    """(feature model: input -> cut tensors, tail: cut tensors -> level 1 output), sharing layers
    with `model`; only the tail's layers are trainable."""
    import keras

    cuts = [model.get_layer(name).output for name in CUTS[train_from]]
    features = keras.Model(model.input, cuts, name="frozen_part")
    tail = keras.Model(cuts, [model.output["level1"], model.output["level2"]], name="trained_part")
    tail_layers = {layer.name for layer in tail.layers}
    for layer in model.layers:
        layer.trainable = layer.name in tail_layers
    return features, tail


def standardize_inputs(tail, feats):
    """Trains the first convolution on per-channel standardised cut tensors: on the seed-0
    weights level3_cat5's channels have means -0.5..2.4 and stds 0.01..1.1, and plain training
    stalls near a uniform grey (~15.8 dB on the test scenes) although a per-pixel least-squares
    readout of the same tensor reaches 24.6 dB at half size. The kernel and bias are re-expressed
    for the standardised input (the same function, except on the 1-pixel border where 'same'
    zero padding now stands for the mean) and folded back after training: kernel / std per input
    channel, bias - sum(kernel * mean / std). Returns (standardised feats, fold-back function)."""
    import keras

    if len(feats) != 1:
        raise SystemExit("--standardize needs --train_from level3_mb9 (one cut tensor)")
    first = [layer for layer in tail.layers if isinstance(layer, keras.layers.Conv2D)][0]
    mean = feats[0].mean(axis=(0, 1, 2))
    std = np.maximum(feats[0].std(axis=(0, 1, 2)), 1e-3)
    kernel, bias = np.asarray(first.kernel), np.asarray(first.bias)
    first.kernel.assign(kernel * std[None, None, :, None])
    first.bias.assign(bias + np.einsum("hwio,i->o", kernel, mean))
    print(
        f"  {first.name}: trained on standardised inputs (means {mean.min():.2f}..{mean.max():.2f}, "
        f"stds {std.min():.2f}..{std.max():.2f})",
        flush=True,
    )

    def fold():
        k_hat, b_hat = np.asarray(first.kernel), np.asarray(first.bias)
        first.kernel.assign(k_hat / std[None, None, :, None])
        first.bias.assign(b_hat - np.einsum("hwio,i->o", k_hat, mean / std))

    return [((feats[0] - mean) / std).astype(np.float32)], fold


def train_level1_head(model, args, feats, targets):
    """Trains only level 1's up-convolution and head (3 -> 3 channels, 165 weights: all level 1
    adds to level 2's logits) on crops of level 2's logits (2 x --crop, computed once from the
    cut tensors) and the matching target crops."""
    import keras
    import tensorflow as tf

    from pynet_bokeh.training.losses import pynet_loss_terms

    cuts = [model.get_layer(name).output for name in CUTS[args.train_from]]
    to_logits2 = keras.Model(cuts, model.get_layer("level2_logits").output)
    logits2 = np.concatenate(
        [
            np.asarray(
                to_logits2([f[i : i + 8] for f in feats] if len(feats) > 1 else feats[0][i : i + 8])
            )
            for i in range(0, len(targets), 8)
        ]
    )
    inp = keras.Input((None, None, 3))
    x = model.get_layer("level1_up")(inp)
    x = model.get_layer("level1_up_act")(x)
    x = model.get_layer("level1_logits")(x)
    head = keras.Model(inp, model.get_layer("level1_output")(x))
    variables = head.trainable_variables
    rate = tf.keras.optimizers.schedules.CosineDecay(
        args.head_learning_rate, args.head_steps, alpha=0.05
    )
    optimizer = tf.keras.optimizers.Adam(rate)

    @tf.function
    def step(x, y):
        with tf.GradientTape() as tape:
            loss = tf.add_n(
                list(pynet_loss_terms(1, head(x, training=True), y, vgg=False).values())
            )
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables, strict=True))
        return loss

    rng = np.random.default_rng(args.seed + 1)
    print(f"level 1 head: {len(variables)} variables, {args.head_steps} steps", flush=True)
    t0, window = time.time(), []
    c, n, (h, w) = 2 * args.crop, len(targets), logits2.shape[1:3]
    for i in range(1, args.head_steps + 1):
        idx = rng.integers(0, n, args.batch_size)
        ys, xs = (
            rng.integers(0, h - c + 1, args.batch_size),
            rng.integers(0, w - c + 1, args.batch_size),
        )
        x = np.stack(
            [logits2[j, y : y + c, x : x + c] for j, y, x in zip(idx, ys, xs, strict=True)]
        )
        t = np.stack(
            [
                targets[j, 2 * y : 2 * (y + c), 2 * x : 2 * (x + c)]
                for j, y, x in zip(idx, ys, xs, strict=True)
            ]
        )
        window.append(float(step(x, t)))
        if i % args.log_every == 0 or i == args.head_steps:
            print(
                f"head step {i}: loss {np.mean(window):.3f}, {(time.time() - t0) / i:.2f} s/step",
                flush=True,
            )
            window = []


def train(model, args, train_set):
    import tensorflow as tf

    from pynet_bokeh.training.losses import pynet_loss_terms

    features, tail = trained_part(model, args.train_from)
    names = sorted({v.path.split("/")[0] for v in tail.trainable_variables})
    count = sum(int(np.prod(v.shape)) for v in tail.trainable_variables)
    print(f"training {len(names)} layers, {count:,} weights: {', '.join(names)}", flush=True)
    t0 = time.time()
    cache = args.features_cache
    if cache and os.path.isfile(cache):
        with np.load(cache) as data:
            feats = [data[f"cut{i}"] for i in range(len(CUTS[args.train_from]))]
            targets = data["targets"]
        print(f"cut tensors from {cache}", flush=True)
    else:
        feats = [[] for _ in CUTS[args.train_from]]
        targets = []
        for x, y, _ in train_set:
            values = features(x, training=False)
            values = values if isinstance(values, (list, tuple)) else [values]
            for store, v in zip(feats, values, strict=True):
                store.append(np.asarray(v)[0])
            targets.append(y[0])
        feats = [np.stack(f) for f in feats]
        targets = np.stack(targets)
        if cache:
            from pynet_bokeh.files import atomic_path

            with atomic_path(cache, suffix=".npz") as tmp:  # an interrupted run leaves none
                np.savez(tmp, targets=targets, **{f"cut{i}": f for i, f in enumerate(feats)})
    print(
        f"cut tensors of {len(targets)} training photos in {time.time() - t0:.0f} s "
        f"({', '.join(str(tuple(f.shape)) for f in feats)})",
        flush=True,
    )

    if args.head_steps:
        head_data = (feats, targets)
    folded = None
    if args.steps and args.standardize:
        feats, folded = standardize_inputs(tail, feats)

    n, fh, fw = int(targets.shape[0]), int(feats[0].shape[1]), int(feats[0].shape[2])
    scale = int(targets.shape[1]) // fh  # target pixels per cut-tensor pixel (4 at level 3)
    c = args.crop
    rate = tf.keras.optimizers.schedules.CosineDecay(
        args.learning_rate, max(args.steps, 1), alpha=0.05
    )
    optimizer = tf.keras.optimizers.Adam(rate)
    variables = tail.trainable_variables
    rng = np.random.default_rng(args.seed)

    @tf.function
    def step(batch, target):
        with tf.GradientTape() as tape:
            pred, pred2 = tail(batch if len(batch) > 1 else batch[0], training=True)
            terms = pynet_loss_terms(1, pred, target, vgg=False)
            if args.level2_loss:
                half = tf.image.resize(target, tf.shape(pred2)[1:3], method="area")
                terms["level2_l1"] = args.level2_loss * pynet_loss_terms(2, pred2, half)["l1"]
            loss = tf.add_n(list(terms.values()))
        grads = tape.gradient(loss, variables)
        optimizer.apply_gradients(zip(grads, variables, strict=True))
        return loss, terms

    t0, window = time.time(), []
    b = args.batch_size
    for i in range(1, args.steps + 1):
        idx = [int(v) for v in rng.integers(0, n, b)]
        ys = [int(v) for v in rng.integers(0, fh - c + 1, b)]
        xs = [int(v) for v in rng.integers(0, fw - c + 1, b)]
        batch = [
            np.stack([f[j, y : y + c, x : x + c] for j, y, x in zip(idx, ys, xs, strict=True)])
            for f in feats
        ]
        target = np.stack(
            [
                targets[j, y * scale : (y + c) * scale, x * scale : (x + c) * scale]
                for j, y, x in zip(idx, ys, xs, strict=True)
            ]
        )
        loss, terms = step(batch, target)
        window.append(
            [float(loss)] + [float(terms.get(k, 0.0)) for k in ("l1", "ssim", "level2_l1")]
        )
        if i % args.log_every == 0 or i == args.steps:
            m = np.mean(window, axis=0)
            print(
                f"step {i}: loss {m[0]:.3f} (10 L1 {m[1]:.3f}, 10 (1-SSIM) {m[2]:.3f}, "
                f"level 2: {args.level2_loss:g} x 100 L1 {m[3]:.3f}), "
                f"{(time.time() - t0) / i:.2f} s/step",
                flush=True,
            )
            window = []
    if folded is not None:
        folded()
    if args.head_steps:
        train_level1_head(model, args, *head_data)
    for layer in model.layers:
        layer.trainable = True


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--init_from", help="starting weights (e.g. the seed-0 TF1 prefix)")
    ap.add_argument("--output", help="where to write the fine-tuned .weights.h5")
    ap.add_argument("--evaluate", nargs="+", help="only print the metrics of these weights")
    ap.add_argument("--train_from", choices=sorted(CUTS), default="level3_mb9")
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--batch_size", type=int, default=8)
    ap.add_argument("--crop", type=int, default=32, help="crop of the cut tensors (half the input)")
    ap.add_argument("--learning_rate", type=float, default=1e-3)
    ap.add_argument("--log_every", type=int, default=50)
    ap.add_argument(
        "--head_steps", type=int, default=0, help="then train level 1's up-conv + head alone"
    )
    ap.add_argument("--head_learning_rate", type=float, default=1e-2)
    ap.add_argument(
        "--standardize", action="store_true", help="train the first conv on standardised inputs"
    )
    ap.add_argument(
        "--level2_loss", type=float, default=1.0, help="weight of level 2's loss (100 L1) added"
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--features_cache", help="an .npz keeping the cut tensors for a rerun")
    ap.add_argument("--no_initial_eval", action="store_true", help="skip the first metrics")
    ap.add_argument("--ebb_size", default="256x384", help="EBB! photos resized to this (HxW)")
    args = ap.parse_args(argv)

    if not args.evaluate:
        if not (args.init_from and args.output):
            ap.error("pass --init_from and --output (or --evaluate)")
        if not args.output.endswith(".weights.h5"):
            ap.error("--output must end with .weights.h5")
        paths = (args.output, args.init_from)
        if all(map(os.path.exists, paths)) and os.path.samefile(*paths):
            ap.error("--output is the --init_from file; pass a new path (inputs are never touched)")
        model = load_model(args.init_from)  # before the data: a bad path fails at once
    root = synthetic_root()
    test = whole_images(root, "test")
    size = tuple(int(v) for v in args.ebb_size.split("x"))
    ebb = ebb_photos(size) if SAMPLES.is_dir() else []
    if args.evaluate:
        for path in args.evaluate:  # one model in memory at a time
            evaluate(load_model(path), test, ebb)
        return 0
    if not args.no_initial_eval:
        print("initial weights:", flush=True)
        evaluate(model, test, ebb)
    t0 = time.time()
    train(model, args, whole_images(root, "train"))
    print(f"trained in {time.time() - t0:.0f} s; final weights:", flush=True)
    evaluate(model, test, ebb)
    from pynet_bokeh.training.checkpointing import save_weights

    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    save_weights(model, args.output)
    print(f"wrote {args.output}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
