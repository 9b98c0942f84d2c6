"""PyNET-Bokeh's level L as a `TrainingTask`: the authors' recipe, on the EBB! layout.

Level L trains `level_model(full, L)` with the authors' loss for L; a fresh run of level L < 7
starts from the full-model weights level L + 1 saved (`<model_dir>/level_<L+1>/final.weights.h5`,
matched by layer name), or from `init_from` when given.
"""

from __future__ import annotations

import os

import numpy as np
import tensorflow as tf

from pynet_bokeh import metrics as image_metrics
from pynet_bokeh.errors import HandOffError, UsageError
from pynet_bokeh.training import checkpointing
from pynet_bokeh.training.config import validation_cache
from pynet_bokeh.training.losses import pynet_loss_terms
from pynet_bokeh.training.schedule import check_level

MIN_IMAGE_ROW_HEIGHT = 128


__all__ = ["HandOffError", "PyNetLevelTask", "level_dir", "task_from_flags"]


def level_dir(model_dir, level: int) -> str:
    """Where level `level` keeps its checkpoints, logs and final weights."""
    return os.path.join(os.fspath(model_dir), f"level_{check_level(level)}")


class PyNetLevelTask:
    """Trains PyNET-Bokeh's level `level` on an EBB!-layout data set.

    Args:
        level: 7 (coarsest, first) .. 1 (full size).
        dataset_dir: root with train/ and test/ in the EBB! layout.
        model_dir: parent of the level_<L> folders.
        patch_size, batch_size: input patch (half-res, multiple of 32) and batch.
        init_from: weights to start from instead of level L + 1's (see
            `checkpointing.load_initial_weights`).
        vgg: a `vgg.VGGFeatures` for level 1's loss, or False to leave the VGG term out.
        skip_bad: train on the valid pairs when some are broken (else stop and list them).
        model: an already built full PyNET to train (else `build_pynet()`).
        seed: base seed of the data pipeline.
    """

    def __init__(
        self,
        level,
        dataset_dir,
        model_dir,
        patch_size,
        batch_size,
        init_from=None,
        vgg=None,
        skip_bad=False,
        model=None,
    ):
        self.level = check_level(level)
        self.name = f"pynet level {self.level}"
        self.dataset_dir = os.fspath(dataset_dir)
        self.model_dir = os.fspath(model_dir)
        self.work_dir = level_dir(model_dir, self.level)
        self.patch_size = int(patch_size)
        self.batch_size = int(batch_size)
        self.init_from = init_from
        self.vgg = vgg
        self.skip_bad = skip_bad
        self._model = model
        self._pairs = {}
        if self.level == 1 and vgg is None:
            pynet_loss_terms(1, None, None, vgg=None)  # raises the message about --vgg_weights

    @property
    def previous_weights(self) -> str | None:
        """Level L + 1's final weights, the start of a fresh level L < 7."""
        if self.level == 7:
            return None
        return os.path.join(level_dir(self.model_dir, self.level + 1), checkpointing.FINAL_WEIGHTS)

    def preflight(self, resuming: bool) -> None:
        """Validates the data set once and checks the starting weights exist."""
        from pynet_bokeh.data.ebb import BAD_PAIRS_FILE, validate_splits

        if resuming and self.init_from is not None:
            print(f"resuming from {self.work_dir}: --init_from {self.init_from} is not used")
        needs_previous = not (resuming or self.init_from is not None or self.level == 7)
        if needs_previous and not os.path.isfile(self.previous_weights):
            raise HandOffError(
                f"level {self.level} starts from level {self.level + 1}'s final weights, but "
                f"{self.previous_weights} does not exist. Train level {self.level + 1} first "
                f"(python train_level.py --level {self.level + 1} with the same --model_dir), "
                "or pass --init_from to start from other weights."
            )
        self._pairs = validate_splits(
            self.dataset_dir,
            skip_bad=self.skip_bad,
            cache=validation_cache(self.work_dir),
            report=os.path.join(self.work_dir, BAD_PAIRS_FILE),
        )
        if "test" not in self._pairs:
            print(f"{self.dataset_dir} has no test/ split: training without evaluation")

    def trained_on(self):
        """(dataset_dir, stems of train/) once `preflight` has found them, else None."""
        pairs = self._pairs.get("train") if self._pairs else None
        if not pairs:
            return None
        return self.dataset_dir, [p.stem for p in pairs]

    def build_model(self):
        if self._model is None:
            from pynet_bokeh.models.pynet import build_pynet

            self._model = build_pynet()
        return self._model

    def trainable_model(self, model):
        from pynet_bokeh.models.pynet import level_model

        return level_model(model, self.level)

    def initialize(self, model) -> str:
        if self.init_from is not None:
            return "weights from " + checkpointing.load_initial_weights(model, self.init_from)
        if self.level == 7:
            return "from scratch (level 7 is trained first)"
        names = checkpointing.load_weights_by_name(model, self.previous_weights)
        return (
            f"level {self.level + 1}'s final weights, {len(names)} layers by name, from "
            f"{self.previous_weights}"
        )

    def dataset(self, split, seed, repeat, skip_batches=0, shard=None):
        from pynet_bokeh.data.ebb import ebb_dataset

        if split == "test" and "test" not in self._pairs:
            return tf.data.Dataset.from_tensors((tf.zeros([0]), tf.zeros([0]))).take(0)

        train = split == "train"
        return ebb_dataset(
            self.dataset_dir,
            split=split,
            level=self.level,
            patch_size=self.patch_size,
            batch_size=self.batch_size,
            shuffle=train,
            augment=train,
            seed=seed,
            skip_bad=self.skip_bad,
            repeat=repeat,
            pairs=self._pairs.get(split),
            skip_batches=skip_batches,
            shard=shard,
        )

    def loss_terms(self, inputs, targets, outputs):
        vgg = self.vgg if self.level == 1 else None
        return pynet_loss_terms(self.level, outputs, targets, vgg=vgg)

    def eval_metrics(self, inputs, targets, outputs):
        """PSNR, SSIM (outputs of 11 px or more) and, for levels <= 3, MS-SSIM; batch means."""
        pred = np.clip(np.asarray(outputs, np.float32), 0.0, 1.0)
        target = np.asarray(targets, np.float32)
        out = {"psnr": float(np.mean(np.minimum(image_metrics.psnr(pred, target), 100.0)))}
        size = min(target.shape[1:3])
        if size >= image_metrics.SSIM_FILTER_SIZE:
            out["ssim"] = float(np.mean(image_metrics.ssim(pred, target)))
            if self.level <= 3:
                out["ms_ssim"] = float(np.mean(image_metrics.ms_ssim(pred, target)))
        return out

    def image_rows(self, inputs, targets, outputs):
        """input RGB | output | target, side by side, at least 128 px high (nearest upscaling)."""
        targets = tf.convert_to_tensor(targets, tf.float32)
        h, w = int(targets.shape[1]), int(targets.shape[2])
        rgb = tf.image.resize(tf.cast(inputs[..., :3], tf.float32), (h, w), method="area")
        row = tf.concat([rgb, tf.clip_by_value(outputs, 0.0, 1.0), targets], axis=2)
        scale = max(1, -(-MIN_IMAGE_ROW_HEIGHT // h))
        if scale > 1:
            row = tf.image.resize(row, (h * scale, 3 * w * scale), method="nearest")
        return row


def _vgg(flags, level):
    from pynet_bokeh.training.vgg import WHERE_TO_GET, load_vgg19

    if level != 1:
        return None
    if flags.no_vgg:
        if flags.vgg_weights:
            raise UsageError("pass either --vgg_weights or --no_vgg, not both")
        return False
    if not flags.vgg_weights:
        raise UsageError(
            f"level 1's loss has a VGG-19 term: {WHERE_TO_GET}; or pass --no_vgg to leave it out"
        )
    return load_vgg19(flags.vgg_weights)


def task_from_flags(flags, task_cls=None, synthetic_set=None, what="the EBB! root", **options):
    """(task, TrainConfig) from train_level.py's flags; prints the schedule. `task_cls` (default
    PyNetLevelTask) with `options` lets a PyNET variant reuse the schedule and hand-off."""
    from pynet_bokeh.training.config import dataset_root, train_config_from_flags
    from pynet_bokeh.training.schedule import resolve_schedule

    if flags.level is None:
        raise UsageError("pass --level (7 first, then 6 ... 1)")
    try:
        level = check_level(flags.level)
        sched = resolve_schedule(
            level,
            synthetic=flags.synthetic,
            batch_size=flags.batch_size,
            steps=flags.steps,
            learning_rate=flags.learning_rate,
            patch_size=flags.patch_size,
            eval_every=flags.eval_every,
        )
    except ValueError as err:
        raise UsageError(str(err)) from None
    origin = "synthetic CPU schedule" if flags.synthetic else "authors' schedule"
    print(f"{sched.describe()} ({origin}; flags override)", flush=True)
    vgg = _vgg(flags, level)
    root = dataset_root(flags, synthetic_set, what=what)
    try:
        task = (task_cls or PyNetLevelTask)(
            level,
            root,
            flags.model_dir,
            patch_size=sched.patch_size,
            batch_size=sched.batch_size,
            init_from=flags.init_from,
            vgg=vgg,
            skip_bad=flags.skip_bad,
            **options,
        )
    except ValueError as err:
        raise UsageError(str(err)) from None
    config = train_config_from_flags(
        flags,
        task.work_dir,
        steps=sched.steps,
        learning_rate=sched.learning_rate,
        eval_every=sched.eval_every,
    )
    return task, config
