"""BRADCN's training stages as `TrainingTask`s for the project's one `Trainer`.

    python train_level.py --model bradcn --stage adcn --dataset_dir SUNRGBD_LAYOUT --init_from dpt_hybrid_nyu-2ce69ec7.pt
    python train_level.py --model bradcn --stage render --dataset_dir EBB --init_from BRViT_53_0.pt
    python train_level.py --model bradcn --stage render_msssim --dataset_dir EBB
    python train_level.py --model bradcn --stage adcn --synthetic     # tiny config, CPU minutes

Stages (spec section 8; each keeps its work folder ``<model_dir>/bradcn_<stage>`` and starts a
fresh run from the previous stage's ``final.weights.h5``, matched by layer name):
- ``adcn`` (stage 1): only ADCN trains; the depth net (DPT-NYU, ``--init_from`` .pt) is frozen.
  Label ``|Do_n - Dgt_n|`` (both divided by ``depth_max``), L1 over pixels with GT depth.
  Paper: 50 epochs of 6,545 SUN RGB-D images, batch 1, lr 1e-4, Adam [R]; images 480 x 640 [R].
- ``render`` (stage 2, phase A): Render Net, Adap convs and the depth net train, ADCN frozen
  [R]; L1 between the rendered and the GT bokeh; 30 epochs of 4,400 EBB! pairs, lr 5e-5.
  ``--init_from``: BRViT's ``BRViT_53_0.pt`` or a DPT ``.pt`` for the Render Net (else scratch).
- ``render_msssim`` (phase B): L1 + (1 - MS-SSIM), 30 more epochs, lr 5e-5 [R].

Stage-1 data: an RGB-D folder layout, or a synthetic set (auto-detected)::

    ROOT/train/rgb/<stem>.jpg|.png    the photo
    ROOT/train/depth/<stem>.png       16-bit depth, SUN RGB-D encoding (below); 0 = no depth
    ROOT/test/...                     the same (optional: evaluation)

SUN RGB-D's toolbox decodes its PNGs by rotating the uint16 right by 3 bits (``(v >> 3) |
(v << 13)``), giving millimetres; metres are capped at 8. A synthetic set
(``pynet_bokeh.data.synthetic``: ``original/*.jpg`` + ``depth_true/*.npy``) holds a relative
disparity d in [0, 1] instead: [R] it is mapped to ``depth_max / (1 + 9 d)`` metres (disparity
linear in inverse depth; d = 0 is the far limit, d = 1 is a tenth of it). The photo is resized to
the stage's size (bilinear, antialiased), the depth with nearest neighbour.

Stage-2 data: the EBB! layout through ``pynet_bokeh.data.ebb.ebb_dataset`` at level 2 (the
half-resolution photo, the bokeh target at the same size), its depth channel dropped: BRADCN
predicts its own depth. Square patches of ``--patch_size`` (paper default 512 from 512 x 768).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import tensorflow as tf

from pynet_bokeh import metrics as image_metrics
from pynet_bokeh.errors import HandOffError, UsageError
from pynet_bokeh.training import checkpointing
from pynet_bokeh.training.config import validation_cache

STAGES = ("adcn", "render", "render_msssim")
PREVIOUS = {"adcn": None, "render": "adcn", "render_msssim": "render"}
#: MS-SSIM scale weights (Wang et al. 2003, tf.image.ssim_multiscale's defaults).
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
SUN_MAX_DEPTH_M = 8.0
PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png")


def stage_dir(model_dir, stage):
    if stage not in STAGES:
        raise ValueError(f"--stage {stage!r}: BRADCN's stages are {', '.join(STAGES)}")
    return os.path.join(os.fspath(model_dir), f"bradcn_{stage}")


# --- stage-1 data -----------------------------------------------------------------------------


def decode_sun_depth(raw):
    """SUN RGB-D uint16 depth PNG values -> metres (rotate right by 3 bits, mm, capped at 8)."""
    v = tf.cast(raw, tf.int32)
    mm = tf.bitwise.bitwise_and(
        tf.bitwise.bitwise_or(tf.bitwise.right_shift(v, 3), tf.bitwise.left_shift(v, 13)), 0xFFFF
    )
    return tf.minimum(tf.cast(mm, tf.float32) / 1000.0, SUN_MAX_DEPTH_M)


def synthetic_depth_m(disparity, depth_max):
    """Synthetic relative disparity d in [0, 1] -> metres, ``depth_max / (1 + 9 d)`` [R]."""
    return depth_max / (1.0 + 9.0 * tf.clip_by_value(tf.cast(disparity, tf.float32), 0.0, 1.0))


def find_rgbd_pairs(root, split):
    """[(photo, depth file, kind)] of an RGB-D split: kind "sun" (rgb/ + depth/ 16-bit PNG) or
    "synthetic" (original/ + depth_true/*.npy). Raises naming the folder when none are found."""
    split_dir = Path(root) / split
    layouts = [("rgb", "depth", ".png", "sun"), ("original", "depth_true", ".npy", "synthetic")]
    for photo_dir, depth_dir, depth_suffix, kind in layouts:
        if not (split_dir / photo_dir).is_dir():
            continue
        photos = sorted(
            p for p in (split_dir / photo_dir).iterdir() if p.suffix.lower() in PHOTO_SUFFIXES
        )
        pairs, missing = [], []
        for photo in photos:
            depth = split_dir / depth_dir / (photo.stem + depth_suffix)
            (pairs if depth.is_file() else missing).append((photo, depth, kind))
        if missing:
            raise FileNotFoundError(
                f"{split_dir / depth_dir}: no depth for {len(missing)} photo(s), e.g. "
                f"{missing[0][1].name} for {missing[0][0].name}"
            )
        if pairs:
            return pairs
    raise FileNotFoundError(
        f"{split_dir}: no RGB-D pairs; expected rgb/<stem>.jpg + depth/<stem>.png (16-bit, SUN "
        "RGB-D encoding) or a synthetic set's original/ + depth_true/"
    )


def rgbd_dataset(pairs, image_hw, depth_max, batch_size, shuffle, seed, repeat, skip_batches=0):
    """(rgb (N,h,w,3) in [0,1], Dgt_n (N,h,w,1) = metres / depth_max, 0 = no depth)."""
    photos = [str(p) for p, _, _ in pairs]
    depths = [str(d) for _, d, _ in pairs]
    synthetic = pairs[0][2] == "synthetic"  # one layout per split (find_rgbd_pairs)
    ds = tf.data.Dataset.from_tensor_slices((photos, depths))
    if shuffle:
        ds = ds.shuffle(len(photos), seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    ds = tf.data.Dataset.zip(ds, tf.data.Dataset.random(seed=seed))
    if skip_batches:
        ds = ds.skip(int(skip_batches) * batch_size)

    def load_npy(path):
        return np.load(path.decode()).astype(np.float32)[..., None]

    def load(element, rand):
        photo, depth = element
        rgb = tf.image.decode_image(tf.io.read_file(photo), channels=3, expand_animations=False)
        rgb = tf.image.convert_image_dtype(rgb, tf.float32)
        rgb = tf.image.resize(rgb, image_hw, antialias=True)
        if synthetic:
            disparity = tf.numpy_function(load_npy, [depth], tf.float32)
            metres = synthetic_depth_m(tf.ensure_shape(disparity, [None, None, 1]), depth_max)
        else:
            raw = tf.io.decode_png(tf.io.read_file(depth), channels=1, dtype=tf.uint16)
            metres = decode_sun_depth(raw)
        metres = tf.image.resize(metres, image_hw, method="nearest")
        if shuffle:  # augmentation on training data: horizontal flip
            flip = tf.equal(rand % 2, 1)
            rgb = tf.cond(flip, lambda: rgb[:, ::-1], lambda: rgb)
            metres = tf.cond(flip, lambda: metres[:, ::-1], lambda: metres)
        return tf.clip_by_value(rgb, 0.0, 1.0), metres / depth_max

    ds = ds.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


# --- losses -----------------------------------------------------------------------------------


def _gaussian_filter(x, size=11, sigma=1.5):
    coords = np.arange(size, dtype=np.float64) - (size - 1) / 2
    g = np.exp(-(coords**2) / (2 * sigma**2))
    g /= g.sum()
    ch = x.shape[-1]
    kernel = tf.constant(np.tile(np.outer(g, g)[:, :, None, None], (1, 1, ch, 1)), x.dtype)
    return tf.nn.depthwise_conv2d(x, kernel, [1, 1, 1, 1], "VALID")


def ms_ssim(pred, target, max_val=1.0):
    """Mean MS-SSIM with tf.image.ssim_multiscale's definition (5 scales, the weights above,
    11-tap Gaussian sigma 1.5, VALID, 2x2 average pooling), per-scale terms floored at 1e-6 so
    that the gradient stays finite (tf.image uses relu, whose 0^w has an infinite slope).
    Small images use fewer scales, weights renormalised (``metrics.ms_ssim_scales``)."""
    x, y = tf.cast(pred, tf.float32), tf.cast(target, tf.float32)
    scales = image_metrics.ms_ssim_scales(int(x.shape[1]), int(x.shape[2]))
    if scales == 0:
        raise ValueError(f"MS-SSIM needs images of at least 11 px, got {x.shape[1:3]}")
    weights = np.asarray(MS_SSIM_WEIGHTS[:scales])
    weights = weights / weights.sum()
    c1, c2 = (0.01 * max_val) ** 2, (0.03 * max_val) ** 2
    value = 1.0
    for k in range(scales):
        if k:
            x = tf.nn.avg_pool2d(x, 2, 2, "VALID")
            y = tf.nn.avg_pool2d(y, 2, 2, "VALID")
        mx, my = _gaussian_filter(x), _gaussian_filter(y)
        sxx = _gaussian_filter(x * x) - mx * mx
        syy = _gaussian_filter(y * y) - my * my
        sxy = _gaussian_filter(x * y) - mx * my
        cs = (2.0 * sxy + c2) / (sxx + syy + c2)
        term = cs if k < scales - 1 else cs * (2.0 * mx * my + c1) / (mx * mx + my * my + c1)
        value = value * tf.maximum(tf.reduce_mean(term, axis=(1, 2)), 1e-6) ** weights[k]
    return tf.reduce_mean(value)


def masked_l1(pred, target, mask):
    mask = tf.cast(mask, tf.float32)
    return tf.reduce_sum(mask * tf.abs(pred - target)) / tf.maximum(tf.reduce_sum(mask), 1.0)


# --- the task ---------------------------------------------------------------------------------


class BradcnTask:
    """One BRADCN stage (``adcn``, ``render`` or ``render_msssim``) on ``dataset_dir``.

    Args:
        stage: see the module docstring.
        dataset_dir: the RGB-D root (stage ``adcn``) or the EBB! root (``render*``).
        model_dir: parent of the ``bradcn_<stage>`` folders.
        config: ``"paper"`` or ``"tiny"`` (``pynet_bokeh.models.bradcn``).
        init_from: stage ``adcn``: the DPT-NYU ``.pt`` for the depth net; ``render``: BRViT or
            DPT ``.pt`` for the Render Net; or a ``.weights.h5`` / stage folder for any stage
            (instead of the previous stage's weights).
        image_hw: stage-1 image size (default 480 x 640 paper, the config's size for tiny).
        patch_size, batch_size: stage-2 patch (a multiple of 32) and batch.
        allow_untrained_depth: stage 1 without DPT-NYU weights (pipeline tests only).
        model_overrides: BRADCN knobs changed from ``config`` (e.g. ``inject_encoder="light"``);
            every stage of a run must use the same ones (weights move by layer name).
    """

    def __init__(
        self,
        stage,
        dataset_dir,
        model_dir,
        config="paper",
        init_from=None,
        image_hw=None,
        patch_size=None,
        batch_size=1,
        allow_untrained_depth=False,
        skip_bad=False,
        model=None,
        model_overrides=None,
    ):
        from pynet_bokeh.models.bradcn import bradcn_config

        self.work_dir = stage_dir(model_dir, stage)
        self.stage = stage
        self.name = f"bradcn {stage}"
        self.model_overrides = dict(model_overrides or {})
        self.cfg = bradcn_config(config, **self.model_overrides)
        self.config = config
        self.dataset_dir = os.fspath(dataset_dir)
        self.model_dir = os.fspath(model_dir)
        self.init_from = None if init_from is None else os.fspath(init_from)
        default_hw = (480, 640) if config == "paper" else self.cfg["img_hw"]
        self.image_hw = tuple(image_hw or default_hw)
        self.patch_size = int(patch_size or (512 if config == "paper" else self.cfg["img_hw"][0]))
        if self.patch_size % 32 or any(s % 32 for s in self.image_hw):
            raise ValueError(
                f"BRADCN needs sizes that are multiples of 32: patch_size {self.patch_size}, "
                f"image size {self.image_hw}"
            )
        self.batch_size = int(batch_size)
        self.allow_untrained_depth = allow_untrained_depth
        self.skip_bad = skip_bad
        self._model = model
        self._pairs = {}

    @property
    def previous_weights(self):
        prev = PREVIOUS[self.stage]
        if prev is None:
            return None
        return os.path.join(stage_dir(self.model_dir, prev), checkpointing.FINAL_WEIGHTS)

    def _init_is_pt(self):
        return self.init_from is not None and self.init_from.endswith((".pt", ".pth"))

    def preflight(self, resuming):
        """Finds and checks the data, and the weights a fresh run starts from."""
        if not resuming:
            self._check_start()  # before the data is read: a failed hand-off leaves no folder
        if self.stage == "adcn":
            self._pairs["train"] = find_rgbd_pairs(self.dataset_dir, "train")
            if (Path(self.dataset_dir) / "test").is_dir():
                self._pairs["test"] = find_rgbd_pairs(self.dataset_dir, "test")
        else:
            from pynet_bokeh.data.ebb import BAD_PAIRS_FILE, validate_splits

            self._pairs.update(
                validate_splits(
                    self.dataset_dir,
                    skip_bad=self.skip_bad,
                    cache=validation_cache(self.work_dir),
                    report=os.path.join(self.work_dir, BAD_PAIRS_FILE),
                )
            )

    def _check_start(self):
        """The weights a fresh run starts from exist (hand-off, --init_from, depth net)."""
        if self.init_from is not None and not os.path.exists(self.init_from):
            raise FileNotFoundError(f"--init_from {self.init_from}: no such file or folder")
        if self.stage == "adcn" and self.init_from is None and not self.allow_untrained_depth:
            raise FileNotFoundError(
                "stage adcn labels ADCN with the depth net's error, so the depth net needs its "
                "weights: pass --init_from dpt_hybrid_nyu-2ce69ec7.pt (GitHub release 1_0 of "
                "isl-org/DPT)"
            )
        prev = self.previous_weights
        if prev is not None and not os.path.isfile(prev) and not self._is_weights_h5_init():
            raise HandOffError(
                f"stage {self.stage} starts from stage {PREVIOUS[self.stage]}'s final weights, "
                f"but {prev} does not exist. Train it first (python train_level.py --model "
                f"bradcn --stage {PREVIOUS[self.stage]} with the same --model_dir)."
            )

    def _is_weights_h5_init(self):
        return self.init_from is not None and not self._init_is_pt()

    def trained_on(self):
        """(dataset_dir, stems of train/) once `preflight` has found them, else None."""
        pairs = self._pairs.get("train") if self._pairs else None
        if not pairs:
            return None
        # EBB! pairs, or the adcn stage's (photo, depth, kind) tuples
        return self.dataset_dir, [p.stem if hasattr(p, "stem") else p[0].stem for p in pairs]

    def build_model(self):
        if self._model is None:
            from pynet_bokeh.models.bradcn import build_bradcn

            self._model = build_bradcn(self.config, **self.model_overrides)
        return self._model

    def trainable_model(self, model):
        from pynet_bokeh.models.bradcn import adcn_stage_model, render_stage_model, set_trainable

        if self.stage == "adcn":
            for part, flag in (
                ("adcn", True),
                ("depth", False),
                ("render", False),
                ("adap", False),
            ):
                set_trainable(model, part, flag)
            return adcn_stage_model(model)
        set_trainable(model, "adcn", not self.cfg["freeze_adcn"])
        set_trainable(model, "depth", not self.cfg["freeze_depth"])
        set_trainable(model, "render", True)
        set_trainable(model, "adap", True)
        return render_stage_model(model)

    def initialize(self, model):
        from pynet_bokeh.models.bradcn import load_bradcn_weights

        said = []
        if self.previous_weights is not None and not self._is_weights_h5_init():
            names = checkpointing.load_weights_by_name(model, self.previous_weights)
            said.append(f"stage {PREVIOUS[self.stage]}'s weights ({len(names)} layers)")
        if self._is_weights_h5_init():
            said.append("weights from " + checkpointing.load_initial_weights(model, self.init_from))
        elif self._init_is_pt():
            part = "depth" if self.stage == "adcn" else "render"
            skipped = load_bradcn_weights(model, **{part: self.init_from})[part]
            said.append(f"{part} net from {self.init_from} ({len(skipped)} unused keys skipped)")
        elif self.stage == "adcn":
            said.append("UNTRAINED depth net (pipeline test only)")
        return "; ".join(said) or "from scratch"

    def dataset(self, split, seed, repeat, skip_batches=0):
        if split not in self._pairs:
            return tf.data.Dataset.from_tensors((tf.zeros([0]), tf.zeros([0]))).take(0)
        train = split == "train"
        if self.stage == "adcn":
            return rgbd_dataset(
                self._pairs[split], self.image_hw, self.cfg["depth_max"], self.batch_size,
                shuffle=train, seed=seed, repeat=repeat, skip_batches=skip_batches,
            )  # fmt: skip
        from pynet_bokeh.data.ebb import ebb_dataset

        ds = ebb_dataset(
            self.dataset_dir, split=split, level=2, patch_size=self.patch_size,
            batch_size=self.batch_size, shuffle=train, augment=train, seed=seed,
            skip_bad=self.skip_bad, repeat=repeat, pairs=self._pairs[split],
            skip_batches=skip_batches,
        )  # fmt: skip
        return ds.map(lambda x, y: (x[..., :3], y))

    def loss_terms(self, inputs, targets, outputs):
        outputs = tf.cast(outputs, tf.float32)
        if self.stage == "adcn":
            de_n, do_n = outputs[..., :1], tf.stop_gradient(outputs[..., 1:])
            label = tf.abs(do_n - targets)
            return {"l1": masked_l1(de_n, label, targets > 0)}
        terms = {"l1": tf.reduce_mean(tf.abs(outputs - targets))}
        if self.stage == "render_msssim":
            terms["ms_ssim"] = 1.0 - ms_ssim(outputs, targets)
        return terms

    def eval_metrics(self, inputs, targets, outputs):
        outputs = np.asarray(outputs, np.float32)
        targets = np.asarray(targets, np.float32)
        if self.stage == "adcn":
            mask = targets > 0
            label = np.abs(outputs[..., 1:] - targets)
            err = np.abs(outputs[..., :1] - label)[mask]
            return {"adcn_l1": float(err.mean()) if err.size else 0.0,
                    "depth_net_l1": float(label[mask].mean()) if mask.any() else 0.0}  # fmt: skip
        pred = np.clip(outputs, 0.0, 1.0)
        out = {"psnr": float(np.mean(np.minimum(image_metrics.psnr(pred, targets), 100.0)))}
        if min(targets.shape[1:3]) >= image_metrics.SSIM_FILTER_SIZE:
            out["ssim"] = float(np.mean(image_metrics.ssim(pred, targets)))
        return out

    def image_rows(self, inputs, targets, outputs):
        """RGB | output | target (stage 1: predicted error | label, as gray) side by side."""
        outputs = tf.cast(outputs, tf.float32)
        if self.stage == "adcn":
            label = tf.abs(outputs[..., 1:] - targets)
            scale = tf.maximum(tf.reduce_max(label), 1e-6)
            gray = [
                tf.image.grayscale_to_rgb(tf.clip_by_value(t / scale, 0, 1))
                for t in (outputs[..., :1], label)
            ]
            return tf.concat([inputs, *gray], axis=2)
        return tf.concat([inputs, tf.clip_by_value(outputs, 0.0, 1.0), targets], axis=2)


def task_from_flags(flags):
    """(BradcnTask, TrainConfig) from train_level.py's flags (``--model bradcn --stage ...``).

    ``--synthetic`` uses the tiny config on a generated set with a short CPU schedule;
    ``--bradcn_config`` (paper | tiny) otherwise, paper by default.
    """
    from pynet_bokeh.training.config import (
        dataset_root,
        flag_or,
        positive_batch_size,
        train_config_from_flags,
    )

    stage = flags.stage or "adcn"
    if stage not in STAGES:
        raise UsageError(f"--stage {stage!r}: BRADCN's stages are {', '.join(STAGES)}")
    synthetic = bool(flags.synthetic)
    config = getattr(flags, "bradcn_config", None) or ("tiny" if synthetic else "paper")
    root = dataset_root(flags, what="stage adcn: an RGB-D root; render stages: the EBB! root")
    model_dir = flags.model_dir if flags.model_dir != "runs/pynet" else "runs/bradcn"
    paper_steps = {"adcn": 50 * 6545, "render": 30 * 4400, "render_msssim": 30 * 4400}
    paper_lr = {"adcn": 1e-4, "render": 5e-5, "render_msssim": 5e-5}
    task = BradcnTask(
        stage, root, model_dir, config=config, init_from=flags.init_from,
        patch_size=flags.patch_size,
        batch_size=positive_batch_size(flag_or(flags.batch_size, 1)),
        allow_untrained_depth=synthetic, skip_bad=flags.skip_bad,
    )  # fmt: skip
    train_config = train_config_from_flags(
        flags,
        task.work_dir,
        steps=flag_or(flags.steps, 200 if synthetic else paper_steps[stage]),
        learning_rate=flag_or(flags.learning_rate, paper_lr[stage]),
        eval_every=flag_or(flags.eval_every, 100 if synthetic else 5000),
    )
    print(
        f"bradcn {stage}: config {config}, {train_config.steps} steps, "
        f"lr {train_config.learning_rate:g}, batch {task.batch_size}, data {root}",
        flush=True,
    )
    return task, train_config
