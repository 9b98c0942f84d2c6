"""bench_utils.count_flops against FLOPs counted by hand."""

import keras

from pynet_bokeh.bench_utils import count_flops


def test_count_flops_hand_counted():
    x = keras.Input((8, 10, 3))
    a = keras.layers.Conv2D(4, 3, padding="same", name="same")(x)  # 8 x 10 x 4
    b = keras.layers.Conv2D(6, 3, strides=2, padding="valid", name="valid")(a)  # 3 x 4 x 6
    c = keras.layers.Conv2DTranspose(2, 2, strides=2, name="up")(b)  # 6 x 8 x 2
    d = keras.layers.Dense(5, name="dense")(c)  # per pixel: 2 -> 5
    model = keras.Model(x, d)
    same = 2 * (3 * 3 * 3) * 4 * (8 * 10)  # 2 x (kernel taps x cin) x cout x output pixels
    valid = 2 * (3 * 3 * 4) * 6 * (3 * 4)
    up = 2 * (2 * 2) * 6 * 2 * (3 * 4)  # transposed: per input pixel
    dense = 2 * 2 * 5 * (6 * 8)
    assert count_flops(model, (8, 10, 3)) == same + valid + up + dense == 24576


def test_alternating_best_times_runs_in_turn_and_keeps_each_best():
    import time

    from pynet_bokeh.bench_utils import alternating_best_times

    calls = []

    def fast():
        calls.append("fast")
        time.sleep(0.002)

    def slow():
        calls.append("slow")
        time.sleep(0.02)

    best_fast, best_slow = alternating_best_times([fast, slow], repeats=2, warmup=1)
    assert calls == ["fast", "slow"] * 3  # one warm-up turn, then two timed turns
    assert 0.002 <= best_fast < 0.02 <= best_slow < 1.0
