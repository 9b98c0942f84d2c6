"""Per-level training defaults: the PyNET-Bokeh authors' schedule, and a small synthetic one.

The authors trained on a 16 GB V100 with 512 x 512 input patches, Adam at 5e-5, level 7 first
(`../shared/specs/pynet.md`, "Training recipe"). `--synthetic` runs use a much smaller schedule
so that the README's main-job command trains level 7 in minutes on a 2-core CPU. Every value is
a default only: `resolve_schedule` applies the user's overrides.
"""

from __future__ import annotations

import dataclasses
import math

from pynet_bokeh.models.pynet import LEVELS, check_level  # noqa: F401 (re-exported)

AUTHORS_LEARNING_RATE = 5e-5
AUTHORS_PATCH_SIZE = 512
AUTHORS_EVAL_EVERY = 1000

# level: (batch size, iterations), the authors' release.
_AUTHORS = {
    7: (50, 5000),
    6: (50, 5000),
    5: (40, 20000),
    4: (14, 20000),
    3: (9, 30000),
    2: (9, 80000),
    1: (5, 100000),
}

# level: (batch size, steps, input patch size) for the generated synthetic set on a CPU: small
# enough that each level trains in a few minutes on 2 cores (level 7's output is then 4 x 4). The learning rate is higher than the
# authors' because the runs are ~50x shorter.
_SYNTHETIC = {
    7: (8, 300, 128),
    6: (8, 300, 128),
    5: (4, 200, 128),
    4: (4, 200, 128),
    3: (2, 200, 128),
    2: (2, 200, 128),
    1: (1, 200, 128),
}
SYNTHETIC_LEARNING_RATE = 1e-4
SYNTHETIC_EVAL_EVERY = 100


@dataclasses.dataclass(frozen=True)
class LevelSchedule:
    """Training settings of one level."""

    level: int
    batch_size: int
    steps: int
    learning_rate: float
    patch_size: int
    eval_every: int

    def describe(self) -> str:
        return (
            f"level {self.level}: batch {self.batch_size}, {self.steps} steps, "
            f"learning rate {self.learning_rate:g}, input patch {self.patch_size}x{self.patch_size}, "
            f"eval every {self.eval_every} steps"
        )


def authors_schedule(level: int) -> LevelSchedule:
    """The authors' settings for `level` (batch, iterations, lr 5e-5, 512-px patches)."""
    level = check_level(level)
    batch, steps = _AUTHORS[level]
    return LevelSchedule(
        level, batch, steps, AUTHORS_LEARNING_RATE, AUTHORS_PATCH_SIZE, AUTHORS_EVAL_EVERY
    )


def synthetic_schedule(level: int) -> LevelSchedule:
    """Small CPU-friendly settings for the generated synthetic set."""
    level = check_level(level)
    batch, steps, patch = _SYNTHETIC[level]
    return LevelSchedule(level, batch, steps, SYNTHETIC_LEARNING_RATE, patch, SYNTHETIC_EVAL_EVERY)


def resolve_schedule(level: int, synthetic: bool = False, **overrides) -> LevelSchedule:
    """The default schedule for `level`, with every non-None keyword in `overrides` applied.

    Keys: batch_size, steps, learning_rate, patch_size, eval_every. A patch size must be a
    positive multiple of 32 (the network's total downscaling).
    """
    base = synthetic_schedule(level) if synthetic else authors_schedule(level)
    fields = {f.name for f in dataclasses.fields(LevelSchedule)} - {"level"}
    unknown = set(overrides) - fields
    if unknown:
        raise ValueError(f"unknown schedule settings {sorted(unknown)}; use {sorted(fields)}")
    chosen = {k: v for k, v in overrides.items() if v is not None}
    sched = dataclasses.replace(base, **chosen)
    for name in ("batch_size", "steps", "eval_every"):
        if getattr(sched, name) <= 0:
            raise ValueError(f"--{name} must be positive, got {getattr(sched, name)}")
    if not (math.isfinite(sched.learning_rate) and sched.learning_rate > 0):
        raise ValueError(f"--learning_rate must be a positive number, got {sched.learning_rate}")
    if sched.patch_size <= 0 or sched.patch_size % 32:
        raise ValueError(
            f"--patch_size must be a positive multiple of 32 (PyNET halves the input 5 times), "
            f"got {sched.patch_size}"
        )
    return sched
