"""pynet_bokeh.training.schedule: the authors' per-level values, the synthetic ones, overrides."""

import pytest

from pynet_bokeh.training.schedule import (
    authors_schedule,
    check_level,
    resolve_schedule,
    synthetic_schedule,
)

AUTHORS = {7: (50, 5000), 6: (50, 5000), 5: (40, 20000), 4: (14, 20000), 3: (9, 30000), 2: (9, 80000), 1: (5, 100000)}  # fmt: skip


@pytest.mark.parametrize("level", range(1, 8))
def test_authors_schedule_matches_the_release(level):
    sched = authors_schedule(level)
    assert (sched.batch_size, sched.steps) == AUTHORS[level]
    assert sched.learning_rate == 5e-5
    assert sched.patch_size == 512
    assert sched.eval_every == 1000


@pytest.mark.parametrize("level", range(1, 8))
def test_synthetic_schedule_is_small_and_fits_the_network(level):
    sched = synthetic_schedule(level)
    # the generated set is 256 x 384 (input 128 x 192): a patch must fit inside it
    assert sched.patch_size % 32 == 0 and sched.patch_size <= 128
    assert sched.steps <= 300 and sched.batch_size <= 8


def test_every_value_can_be_overridden_and_none_keeps_the_default():
    sched = resolve_schedule(
        3, batch_size=2, steps=7, learning_rate=1e-3, patch_size=64, eval_every=5
    )
    assert (sched.batch_size, sched.steps, sched.learning_rate) == (2, 7, 1e-3)
    assert (sched.patch_size, sched.eval_every, sched.level) == (64, 5, 3)
    kept = resolve_schedule(3, steps=None, batch_size=None)
    assert kept == authors_schedule(3)
    assert (
        resolve_schedule(7, synthetic=True, steps=10).batch_size == synthetic_schedule(7).batch_size
    )


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"patch_size": 100}, "--patch_size must be a positive multiple of 32"),
        ({"steps": 0}, "--steps must be positive"),
        ({"batch_size": -1}, "--batch_size must be positive"),
        ({"learning_rate": 0.0}, "--learning_rate must be a positive number"),
        ({"learning_rate": float("nan")}, "--learning_rate must be a positive number, got nan"),
        ({"epochs": 3}, "unknown schedule settings"),
    ],
)
def test_bad_overrides_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        resolve_schedule(7, **kwargs)


@pytest.mark.parametrize("level", [0, 8, 2.5, "7", True])
def test_bad_level_is_rejected(level):
    with pytest.raises(ValueError, match="level must be one of 1..7"):
        check_level(level)
