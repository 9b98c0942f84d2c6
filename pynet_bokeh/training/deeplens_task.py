"""DeepLens training stages as `TrainingTask`s of the project's one `Trainer`.

    python train_level.py --model deeplens --stage depth --synthetic
    python train_level.py --model deeplens --stage blur  --synthetic   # starts from depth's weights
    python train_level.py --model deeplens --stage sr    --synthetic   # ... from blur's
    python train_level.py --model deeplens --stage all   --synthetic   # ... from sr's, end to end

The authors never released training code (their issue #3: Adobe owns it), and the paper body
was not available to this port, so the recipe below is OURS, shaped by what the release shows
(stage-wise checkpoints `model_depth`, `model_lensblur`, `sr_v2.0.0`, then `model_end2end`):

- depth: `Depth` alone; target the data set's depth map (EBB! encoding: min-max normalised
  disparity, near = bright, which is what DeepLens' normalised inverse depth means).
- blur:  `Lensblur` + `Feature` at working resolution (half the photo), given the TRUE signed
  defocus; target the defocused image downscaled x0.5 (2 x 2 mean).
- sr:    `SR` alone, given the working-resolution image, the TRUE working-resolution DoF, the true
  signed defocus and the full-resolution photo; target the full-resolution defocused image.
- all:   everything end to end (2x path): photo pyramid, focal depth and aperture in, DoF out.

Losses (weights in `LOSS_WEIGHTS`): L1 of the output against the target, plus L1 of their
horizontal and vertical finite differences (edges: blur width for images, boundaries for depth).

Lens units: `render.classical` blurs a point one unit of depth-map value from the focus plane
over a radius of `aperture_depth01 * max(H, W)` pixels (the synthetic sidecar's
`aperture_depth01`). DeepLens' aperture A in [0, 1] is mapped so that A = 1 means a radius of
`APERTURE_RADIUS_FRACTION` (5 %) of the long side per unit of depth, i.e. 16 px at the 320 working
size, the proto's `aperture_radius: 16`. So A = aperture_depth01 / 0.05 and the signed defocus is
`(depth01 - focus_depth01) * A`, exactly as in the original graph.

Each stage writes `<model_dir>/deeplens_<stage>/` (checkpoints, logs, final.weights.h5); a fresh
stage after `depth` starts from the previous stage's final weights (all four modules, by layer
name) or from `--init_from` (a DeepLens TF1 checkpoint such as the authors' release, or any
weights file the trainer accepts).
"""

from __future__ import annotations

import json
import os

import numpy as np
import tensorflow as tf

from pynet_bokeh.errors import BadDataError, HandOffError, UsageError
from pynet_bokeh.models.deeplens.networks import APERTURE_RADIUS_FRACTION
from pynet_bokeh.training import checkpointing

STAGES = ("depth", "blur", "sr", "all")
LOSS_WEIGHTS = {"l1": 1.0, "gradient_l1": 0.5}
# Our defaults (no published schedule): batch, steps, learning rate per stage.
SCHEDULE = {"batch_size": 4, "learning_rate": 1e-4, "eval_every": 1000}
STEPS = {"depth": 40000, "blur": 40000, "sr": 40000, "all": 20000}
SYNTHETIC_SCHEDULE = {"batch_size": 2, "learning_rate": 3e-4, "eval_every": 100}
SYNTHETIC_STEPS = {"depth": 200, "blur": 300, "sr": 300, "all": 100}
SYNTHETIC_SET = {"n_train": 64, "n_test": 8, "size": (256, 384), "variants": 2}


class _FlatModule:
    """Builds the Keras layer that stands for one DeepLens module in the training graph.

    The trainer's `checkpointing.save_weights` expects every top-level layer's weights under
    `layers/<key>/vars` in the `.weights.h5` file, which Keras does not do for a nested model.
    This wrapper layer forwards calls to the module and also writes the module's weights flat
    under its own `vars` (Keras still writes the module's own groups beside them, so the file
    holds the weights twice). It carries the module's name (`Depth`, `Lensblur`, `Feature`, `SR`),
    so weights move between stages by name.
    """

    _cls = None

    @classmethod
    def wrap(cls, module):
        if cls._cls is None:
            import keras

            class DeepLensModule(keras.layers.Layer):
                def __init__(self, module, **kwargs):
                    super().__init__(name=module.name, **kwargs)
                    self.module = module

                def call(self, inputs, training=None):
                    return self.module(inputs, training=training)

                def save_own_variables(self, store):
                    for i, v in enumerate(self.weights):
                        store[str(i)] = v.numpy()

                def load_own_variables(self, store):
                    for i, v in enumerate(self.weights):
                        v.assign(store[str(i)])

            cls._cls = DeepLensModule
        return cls._cls(module)


class _TrainingModules:
    """The four modules as wrapper layers, with DeepLens' attribute names (for the graph builders)."""

    def __init__(self, deeplens):
        for attr in ("depth_net", "lensblur_net", "feature_net", "sr_net"):
            setattr(self, attr, _FlatModule.wrap(getattr(deeplens, attr)))
        self.combine = deeplens.combine


# One error class per kind across the package; the old name stays importable.
DeepLensDataError = BadDataError


def stage_dir(model_dir, stage):
    """Where stage `stage` keeps its checkpoints, logs and final weights."""
    return os.path.join(os.fspath(model_dir), f"deeplens_{check_stage(stage)}")


def check_stage(stage):
    if stage not in STAGES:
        raise ValueError(f"--stage must be one of {', '.join(STAGES)} for DeepLens, got {stage!r}")
    return stage


def find_samples(dataset_dir, split):
    """Samples of an EBB!-layout split with `params/<stem>.json` sidecars (data.synthetic's)."""
    root = os.path.join(os.fspath(dataset_dir), split)
    params_dir = os.path.join(root, "params")
    if not os.path.isdir(params_dir):
        raise DeepLensDataError(
            f"{params_dir} does not exist: DeepLens training needs each sample's focus and "
            "aperture, which data.synthetic writes there (python -m pynet_bokeh.data.synthetic "
            "--out DIR --variants 2, or train_level.py --model deeplens --synthetic)."
        )
    samples = []
    for name in sorted(os.listdir(params_dir)):
        if not name.endswith(".json"):
            continue
        stem = name[:-5]
        paths = {
            "photo": os.path.join(root, "original", stem + ".jpg"),
            "bokeh": os.path.join(root, "bokeh", stem + ".jpg"),
            "depth": os.path.join(root, "original_depth", stem + ".png"),
        }
        for kind, path in paths.items():
            if not os.path.isfile(path):
                raise DeepLensDataError(f"{path} is missing ({kind} of sample {stem!r} in {root}).")
        with open(os.path.join(params_dir, name)) as f:
            params = json.load(f)
        try:
            focus, aperture = float(params["focus_depth01"]), float(params["aperture_depth01"])
        except (KeyError, TypeError, ValueError):
            raise DeepLensDataError(
                f"{os.path.join(params_dir, name)} lacks numeric focus_depth01 / aperture_depth01."
            ) from None
        samples.append({**paths, "focus": focus, "aperture": aperture / APERTURE_RADIUS_FRACTION})
    if not samples:
        raise DeepLensDataError(f"{params_dir} holds no <stem>.json sidecars.")
    return samples


def _read(path, channels):
    data = tf.io.read_file(path)
    if channels == 1:
        img = tf.io.decode_png(data, channels=1)
    else:
        img = tf.io.decode_jpeg(data, channels=3, dct_method="INTEGER_ACCURATE")
    return tf.cast(img, tf.float32) / 255.0


def _half(x):
    return tf.nn.avg_pool2d(x[None], 2, 2, "VALID")[0]


def _gradient_l1(a, b):
    da = (a[:, 1:] - a[:, :-1]) - (b[:, 1:] - b[:, :-1])
    db = (a[:, :, 1:] - a[:, :, :-1]) - (b[:, :, 1:] - b[:, :, :-1])
    return tf.reduce_mean(tf.abs(da)) + tf.reduce_mean(tf.abs(db))


class DeepLensStageTask:
    """Trains one DeepLens stage (`depth`, `blur`, `sr`, `all`) on an EBB!-layout set with sidecars.

    Args:
        stage: one of STAGES.
        dataset_dir: root with train/ (and test/) holding original/, bokeh/, original_depth/, params/.
        model_dir: parent of the deeplens_<stage> folders.
        batch_size: samples per step.
        patch_size: random aligned crop of the photo (multiple of 8) for blur / sr; None: whole.
        init_from: start a fresh run from these weights instead of the previous stage's.
    """

    def __init__(
        self,
        stage,
        dataset_dir,
        model_dir,
        batch_size=4,
        patch_size=None,
        init_from=None,
        skip_bad=False,
    ):
        self.stage = check_stage(stage)
        self.name = f"deeplens {stage}"
        self.dataset_dir = os.fspath(dataset_dir)
        self.model_dir = os.fspath(model_dir)
        self.work_dir = stage_dir(model_dir, stage)
        self.batch_size = int(batch_size)
        if patch_size is not None and (patch_size % 8 or patch_size < 32):
            raise ValueError(f"--patch_size must be a multiple of 8 and >= 32, got {patch_size}")
        self.patch_size = patch_size
        self.init_from = init_from
        self.skip_bad = skip_bad
        self.deeplens = self.modules = None
        self._samples = {}

    @property
    def previous_weights(self):
        i = STAGES.index(self.stage)
        if i == 0:
            return None
        return os.path.join(stage_dir(self.model_dir, STAGES[i - 1]), checkpointing.FINAL_WEIGHTS)

    def preflight(self, resuming):
        fresh = not (resuming or self.init_from is not None or self.previous_weights is None)
        if fresh and not os.path.isfile(self.previous_weights):
            prev = STAGES[STAGES.index(self.stage) - 1]
            raise HandOffError(
                f"DeepLens stage {self.stage!r} starts from stage {prev!r}'s final weights, but "
                f"{self.previous_weights} does not exist. Train it first (train_level.py --model "
                f"deeplens --stage {prev} with the same --model_dir), or pass --init_from (e.g. "
                "the authors' model/model_end2end/model)."
            )
        from pynet_bokeh.data.ebb import BAD_PAIRS_FILE, validate_splits
        from pynet_bokeh.training.config import validation_cache

        splits = ["train"]
        if os.path.isdir(os.path.join(self.dataset_dir, "test", "params")):
            splits.append("test")
        good = validate_splits(  # every split's problems reported together
            self.dataset_dir,
            splits=splits,
            optional=(),
            skip_bad=self.skip_bad,
            cache=validation_cache(self.work_dir),
            report=os.path.join(self.work_dir, BAD_PAIRS_FILE),
        )
        for split in splits:
            self._samples[split] = self._valid_samples(split, good[split])

    def _valid_samples(self, split, good):
        """The split's samples whose files passed validation (`good` pairs; `skip_bad` left
        the broken ones out, else they stopped the run)."""
        samples = find_samples(self.dataset_dir, split)
        stems = {p.stem for p in good}
        kept = [s for s in samples if os.path.splitext(os.path.basename(s["photo"]))[0] in stems]
        if not kept:
            raise BadDataError(f"{self.dataset_dir}/{split}: no valid DeepLens sample left")
        return kept

    # ----------------------------------------------------------------- models
    def build_model(self):
        from pynet_bokeh.models.deeplens import build_deeplens, build_deeplens_graph

        self.deeplens = build_deeplens()
        self.modules = _TrainingModules(self.deeplens)
        return build_deeplens_graph(self.modules, scale=2, focus="depth", name="deeplens_train")

    def trainable_model(self, model):
        import keras

        from pynet_bokeh.models.deeplens import dof_pyramid
        from pynet_bokeh.models.deeplens_layers import ReverseChannels

        dl = self.modules
        if self.stage == "all":
            return model

        def rgb(name, channels=3):
            x = keras.Input((None, None, channels), name=name)
            return x, ReverseChannels(name=f"{name}_bgr")(x)

        if self.stage == "depth":
            image, bgr = rgb("image_320")
            return keras.Model(image, dl.depth_net(bgr)["depth"], name="deeplens_depth")
        signed = keras.Input((None, None, 1), name="depth_signed")
        image, bgr = rgb("image_320")
        if self.stage == "blur":
            dof = dof_pyramid(dl, [bgr], signed)[0]
            inputs = {"image_320": image, "depth_signed": signed}
        else:
            dof_lo, dof_lo_bgr = rgb("dof_320")
            hi, hi_bgr = rgb("image_640")
            dof = dl.sr_net([bgr, dof_lo_bgr, signed, hi_bgr])["dof"]
            inputs = {
                "image_320": image,
                "dof_320": dof_lo,
                "depth_signed": signed,
                "image_640": hi,
            }
        out = ReverseChannels(name="dof_rgb")(dof)
        return keras.Model(inputs, out, name=f"deeplens_{self.stage}")

    def initialize(self, model):
        from pynet_bokeh.models.deeplens import is_deeplens_tf1_checkpoint, load_deeplens_checkpoint

        if self.init_from is not None:
            if is_deeplens_tf1_checkpoint(self.init_from):
                load_deeplens_checkpoint(self.deeplens, self.init_from)
                return f"the DeepLens TF1 checkpoint {self.init_from}"
            return "weights from " + checkpointing.load_initial_weights(model, self.init_from)
        if self.previous_weights is None:
            return "from scratch (Keras default initialisation; no ImageNet ResNet-50 offline)"
        names = checkpointing.load_weights_by_name(model, self.previous_weights)
        return (
            f"stage {STAGES[STAGES.index(self.stage) - 1]!r}'s final weights ({', '.join(names)})"
        )

    # ------------------------------------------------------------------- data
    def dataset(self, split, seed, repeat, skip_batches=0):
        samples = self._samples.get(split)
        if samples is None:
            if split != "train" and not os.path.isdir(
                os.path.join(self.dataset_dir, split, "params")
            ):
                return tf.data.Dataset.from_tensors(({}, tf.zeros([0]))).take(0)
            samples = self._samples[split] = find_samples(self.dataset_dir, split)
        train = split == "train"
        table = {
            k: [s[k] for s in samples] for k in ("photo", "bokeh", "depth", "focus", "aperture")
        }
        ds = tf.data.Dataset.from_tensor_slices(table)
        ds = ds.enumerate()
        if train:
            ds = ds.shuffle(len(samples), seed=seed, reshuffle_each_iteration=True)
        if repeat:
            ds = ds.repeat()
        base_seed = 0 if seed is None else int(seed)
        ds = ds.map(
            lambda i, s: self._example(i, s, base_seed, train),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
        )
        ds = ds.batch(self.batch_size, drop_remainder=train)
        if skip_batches:
            ds = ds.skip(skip_batches)
        return ds.prefetch(tf.data.AUTOTUNE)

    def _example(self, index, s, seed, train):
        photo, bokeh = _read(s["photo"], 3), _read(s["bokeh"], 3)
        h, w = tf.shape(photo)[0] // 2 * 2, tf.shape(photo)[1] // 2 * 2
        photo, bokeh = photo[:h, :w], bokeh[:h, :w]
        depth = _read(s["depth"], 1)
        if train and self.patch_size and self.stage in ("blur", "sr"):
            rng = tf.random.stateless_uniform(
                [2], seed=[seed, tf.cast(index, tf.int32)], maxval=1 << 30, dtype=tf.int32
            )
            p = self.patch_size
            y0 = rng[0] % ((h - p) // 2 + 1) * 2
            x0 = rng[1] % ((w - p) // 2 + 1) * 2
            depth = tf.image.resize(depth, (h // 2, w // 2))[
                y0 // 2 : (y0 + p) // 2, x0 // 2 : (x0 + p) // 2
            ]
            photo, bokeh = photo[y0 : y0 + p, x0 : x0 + p], bokeh[y0 : y0 + p, x0 : x0 + p]
        lo, dof_lo = _half(photo), _half(bokeh)
        depth = tf.image.resize(depth, tf.shape(lo)[:2])  # EBB! maps are half size already
        if train:
            flip = tf.random.stateless_uniform([], seed=[seed + 1, tf.cast(index, tf.int32)]) < 0.5
            flip_lr = lambda x: tf.cond(flip, lambda: x[:, ::-1], lambda: x)  # noqa: E731
            photo, bokeh, lo, dof_lo, depth = map(flip_lr, (photo, bokeh, lo, dof_lo, depth))
        focus, aperture = tf.cast(s["focus"], tf.float32), tf.cast(s["aperture"], tf.float32)
        signed = (depth - focus) * aperture
        if self.stage == "depth":
            return {"image_320": lo}, depth
        if self.stage == "blur":
            return {"image_320": lo, "depth_signed": signed}, dof_lo
        if self.stage == "sr":
            return {
                "image_320": lo,
                "dof_320": dof_lo,
                "depth_signed": signed,
                "image_640": photo,
            }, bokeh
        return {
            "image_320": lo,
            "image_640": photo,
            "aperture": aperture[None],
            "focal_depth": focus[None],
        }, bokeh

    # ----------------------------------------------------------------- losses
    def loss_terms(self, inputs, targets, outputs):
        outputs = tf.cast(outputs, tf.float32)
        return {
            "l1": LOSS_WEIGHTS["l1"] * tf.reduce_mean(tf.abs(outputs - targets)),
            "gradient_l1": LOSS_WEIGHTS["gradient_l1"] * _gradient_l1(outputs, targets),
        }

    def eval_metrics(self, inputs, targets, outputs):
        pred = np.clip(np.asarray(outputs, np.float32), 0.0, 1.0)
        target = np.asarray(targets, np.float32)
        mse = np.mean((pred - target) ** 2, axis=(1, 2, 3))
        psnr = np.minimum(10 * np.log10(1.0 / np.maximum(mse, 1e-10)), 100.0)
        return {"l1": float(np.mean(np.abs(pred - target))), "psnr": float(np.mean(psnr))}

    def image_rows(self, inputs, targets, outputs):
        """input | output | target (depth maps shown in grey)."""
        targets = tf.convert_to_tensor(targets, tf.float32)
        outputs = tf.clip_by_value(tf.cast(outputs, tf.float32), 0.0, 1.0)
        if targets.shape[-1] == 1:
            targets, outputs = (
                tf.image.grayscale_to_rgb(targets),
                tf.image.grayscale_to_rgb(outputs),
            )
        image = inputs["image_640"] if "image_640" in inputs else inputs["image_320"]
        image = tf.image.resize(tf.cast(image, tf.float32), tf.shape(targets)[1:3], method="area")
        return tf.concat([image, outputs, targets], axis=2)


def task_from_flags(flags):
    """(DeepLensStageTask, TrainConfig) from train_level.py's flags (`--model deeplens`)."""
    from pynet_bokeh.training.config import (
        dataset_root,
        flag_or,
        positive_batch_size,
        train_config_from_flags,
    )

    if flags.stage is None:
        raise UsageError("--model deeplens needs --stage: depth, then blur, sr, all")
    try:
        stage = check_stage(flags.stage)
    except ValueError as err:
        raise UsageError(str(err)) from None
    root = dataset_root(flags, SYNTHETIC_SET, "an EBB!-layout root with params/ sidecars")
    sched = SYNTHETIC_SCHEDULE if flags.synthetic else SCHEDULE
    steps = (SYNTHETIC_STEPS if flags.synthetic else STEPS)[stage]
    try:
        task = DeepLensStageTask(
            stage,
            root,
            flags.model_dir,
            batch_size=positive_batch_size(flag_or(flags.batch_size, sched["batch_size"])),
            patch_size=flags.patch_size,
            init_from=flags.init_from,
            skip_bad=flags.skip_bad,
        )
    except ValueError as err:
        raise UsageError(str(err)) from None
    config = train_config_from_flags(
        flags,
        task.work_dir,
        steps=flag_or(flags.steps, steps),
        learning_rate=flag_or(flags.learning_rate, sched["learning_rate"]),
        eval_every=flag_or(flags.eval_every, sched["eval_every"]),
    )
    print(
        f"deeplens {stage}: batch {task.batch_size}, {config.steps} steps, learning rate "
        f"{config.learning_rate:g} ({'synthetic' if flags.synthetic else 'default'} schedule; "
        "flags override)",
        flush=True,
    )
    return task, config
