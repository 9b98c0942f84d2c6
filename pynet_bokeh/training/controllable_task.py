"""Controllable PyNET's level L as a `TrainingTask`: PyNET's recipe, with focus and blur as inputs.

    python train_level.py --model pynet-controllable --level 7 --synthetic \
        --init_from models/original/pynet_bokeh_level_0        # the authors' weights, c ignored
    python train_level.py --model pynet-controllable --level 6 --synthetic   # from level 7's

Data: a synthetic set with several focus / blur variants per scene (`data.synthetic`,
`variants=K`), each sample's controls read from its `params/<stem>.json` (d_f =
`focus_depth01`, K = `aperture_depth01 * max(H, W)`). Real EBB! pairs join with `ebb_dir` and
`ebb_fraction` (the share of training samples drawn from them), with the controls the estimator
stored beside them (`python -m pynet_bokeh.data.controls EBB/`), so the EBB! look is kept.
Evaluation uses the synthetic test split (known controls). Everything else (levels, losses,
hand-off from level L + 1, checkpoints) is `PyNetLevelTask`'s.
"""

from __future__ import annotations

import os

import tensorflow as tf

from pynet_bokeh.errors import BadDataError
from pynet_bokeh.models.pynet import CONTROLLABLE_CHANNELS, DEFAULT_DEFOCUS_K_MAX
from pynet_bokeh.training.pynet_task import PyNetLevelTask

#: Synthetic set for --synthetic: 4 focus / blur draws per scene, K up to ~38 px at 384 px.
SYNTHETIC_SET = {
    "n_train": 64,
    "n_test": 8,
    "size": (256, 384),
    "variants": 4,
    "aperture_range": (0.01, 0.1),
}


def synthetic_controls(pairs):
    """(d_f, K) per pair from its `params/<stem>.json`; BadDataError naming a pair without."""
    from pynet_bokeh.data.controls import known_controls

    missing = [p.stem for p in pairs if p.params is None]
    if missing:
        raise BadDataError(
            f"{len(missing)} pair(s) have no params/<stem>.json with their focus and blur (first: "
            f"{missing[0]}); --dataset_dir must be a synthetic set (python -m "
            "pynet_bokeh.data.synthetic --variants 4); real pairs join through --ebb_dir"
        )
    return [known_controls(p.params) for p in pairs]


def estimated_controls(root, pairs, split="train"):
    """(d_f, K) per pair from `<split>/original_controls/<stem>.json` (the estimator's)."""
    from pynet_bokeh.data.controls import controls_path, read_controls

    split_dir = os.path.join(os.fspath(root), split)
    paths = [controls_path(split_dir, p.stem) for p in pairs]
    missing = [str(path) for path in paths if not path.is_file()]
    if missing:
        raise BadDataError(
            f"{len(missing)} EBB! pair(s) have no estimated controls (first: {missing[0]}); run "
            f"`python -m pynet_bokeh.data.controls {root}` once first"
        )
    return [read_controls(path) for path in paths]


class ControllableLevelTask(PyNetLevelTask):
    """Trains the controllable PyNET's level `level` (see the module docstring).

    Extra args over `PyNetLevelTask`: ebb_dir (EBB!-layout root with estimated controls),
    ebb_fraction (0..1, share of training samples from it), k_max (the model's K_max).
    """

    def __init__(
        self,
        level,
        dataset_dir,
        model_dir,
        patch_size,
        batch_size,
        ebb_dir=None,
        ebb_fraction=0.0,
        k_max=DEFAULT_DEFOCUS_K_MAX,
        **kwargs,
    ):
        super().__init__(level, dataset_dir, model_dir, patch_size, batch_size, **kwargs)
        self.name = f"pynet-controllable level {self.level}"
        if not 0.0 <= float(ebb_fraction) <= 1.0:
            raise ValueError(f"--ebb_fraction must be in [0, 1], got {ebb_fraction}")
        if ebb_fraction and not ebb_dir:
            raise ValueError("--ebb_fraction needs --ebb_dir (EBB! root with estimated controls)")
        self.ebb_dir = os.fspath(ebb_dir) if ebb_dir else None
        self.ebb_fraction = float(ebb_fraction)
        self.k_max = float(k_max)
        self._controls = {}

    def preflight(self, resuming: bool) -> None:
        super().preflight(resuming)
        from pynet_bokeh.data.ebb import find_pairs, validate_pairs

        for split, pairs in self._pairs.items():
            self._controls[split] = synthetic_controls(pairs)
        if self.ebb_fraction:
            pairs = validate_pairs(find_pairs(self.ebb_dir, "train"), skip_bad=self.skip_bad)
            self._pairs["ebb"] = pairs
            self._controls["ebb"] = estimated_controls(self.ebb_dir, pairs)

    def build_model(self):
        if self._model is None:
            from pynet_bokeh import build_pynet

            self._model = build_pynet(
                input_channels=CONTROLLABLE_CHANNELS, defocus_k_max=self.k_max
            )
        return self._model

    def _source(self, key, root, split, seed, repeat, batch_size, skip_batches=0):
        from pynet_bokeh.data.ebb import ebb_dataset

        train = split == "train"
        return ebb_dataset(
            root,
            split=split,
            level=self.level,
            patch_size=self.patch_size,
            batch_size=batch_size,
            shuffle=train,
            augment=train,
            seed=seed,
            repeat=repeat,
            pairs=self._pairs[key],
            skip_batches=skip_batches,
            controls=self._controls[key],
            k_max=self.k_max,
        )

    def dataset(self, split, seed, repeat, skip_batches=0):
        if split == "test" and "test" not in self._pairs:
            return tf.data.Dataset.from_tensors((tf.zeros([0]), tf.zeros([0]))).take(0)
        if split != "train" or not self.ebb_fraction:
            return self._source(
                split, self.dataset_dir, split, seed, repeat, self.batch_size, skip_batches
            )
        # Sample by sample: synthetic (known controls) and EBB! (estimated), mixed.
        synthetic = self._source("train", self.dataset_dir, "train", seed, True, 1).unbatch()
        ebb = self._source("ebb", self.ebb_dir, "train", seed, True, 1).unbatch()
        mixed = tf.data.Dataset.sample_from_datasets(
            [synthetic, ebb], weights=[1.0 - self.ebb_fraction, self.ebb_fraction], seed=seed
        )
        mixed = mixed.batch(self.batch_size, drop_remainder=True)
        return mixed.skip(skip_batches).prefetch(tf.data.AUTOTUNE)


def task_from_flags(flags):
    """(ControllableLevelTask, TrainConfig) from train_level.py's flags (`--method
    pynet-controllable`): PyNET's schedule and level hand-off, this module's data."""
    from pynet_bokeh.training import pynet_task

    return pynet_task.task_from_flags(
        flags,
        task_cls=ControllableLevelTask,
        synthetic_set=SYNTHETIC_SET,
        what="a synthetic set with params/, e.g. from data.synthetic",
        ebb_dir=getattr(flags, "ebb_dir", None),
        ebb_fraction=getattr(flags, "ebb_fraction", 0.0) or 0.0,
    )
