"""Flags -> training configuration, one function for every method's training task."""

from __future__ import annotations

import os

from pynet_bokeh.errors import UsageError

# Synthetic runs are short: checkpoint often. Real runs at the authors' interval.
CHECKPOINT_EVERY = 1000
SYNTHETIC_CHECKPOINT_EVERY = 100
#: The small generated set `--synthetic` trains on (every method the same).
SYNTHETIC_SET = {"n_train": 64, "n_test": 8, "size": (256, 384)}


def default_cache_dir() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "pynet_bokeh")


def dataset_root(flags, synthetic_set=None, what="the EBB! root") -> str:
    """The data set the flags name: `--dataset_dir`, or with `--synthetic` a generated set
    (made on first use in --dataset_dir or the cache folder)."""
    if flags.synthetic:
        from pynet_bokeh.data.synthetic import ensure_synthetic

        cache = flags.dataset_dir or default_cache_dir()
        print(f"synthetic data set in {cache} (generated on first use) ...", flush=True)
        return os.fspath(ensure_synthetic(cache, **(synthetic_set or SYNTHETIC_SET)))
    if not flags.dataset_dir:
        raise UsageError(f"pass --dataset_dir ({what}) or --synthetic")
    if not os.path.isdir(flags.dataset_dir):
        raise UsageError(f"--dataset_dir {flags.dataset_dir} is not a folder")
    return flags.dataset_dir


def train_config_from_flags(flags, work_dir, *, steps, learning_rate, eval_every):
    """The `TrainConfig` of a run: the schedule's `steps`, `learning_rate`, `eval_every`
    (already resolved with their flags) and the flags every method shares."""
    from pynet_bokeh.training.trainer import TrainConfig

    every = flags.checkpoint_every  # 0 is refused by the Trainer, not taken as the default
    if every is None:
        every = SYNTHETIC_CHECKPOINT_EVERY if flags.synthetic else CHECKPOINT_EVERY
    return TrainConfig(
        work_dir=work_dir,
        steps=int(steps),
        learning_rate=float(learning_rate),
        checkpoint_every=every,
        eval_every=int(eval_every),
        keep_checkpoints=flags.keep_checkpoints,
        eval_batches=flags.eval_batches,
        seed=flags.seed,
        strategy=flags.strategy,
        mixed_precision=flags.mixed_precision,
        run_eagerly=flags.run_eagerly,
    )


def flag_or(value, default):
    """A flag's value, or `default` when the flag was not given (None). 0 stays 0, so the
    checks downstream refuse it naming the flag instead of silently using the default."""
    return default if value is None else value


def positive_batch_size(value) -> int:
    """--batch_size as a positive int; UsageError naming the flag otherwise."""
    if int(value) <= 0:
        raise UsageError(f"--batch_size must be positive, got {value}")
    return int(value)


def validation_cache(work_dir) -> str:
    """Where a run remembers the data files that passed validation (a rerun does not decode
    the data set again)."""
    return os.path.join(os.fspath(work_dir), "validation_cache.json")
