"""PyNET's memory measures: the heap given back during a forward pass, outputs unchanged."""

import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from pynet_bokeh import build_pynet, image_io, level_model
from pynet_bokeh.inference import _glibc, release_setup_memory, returning_freed_heap
from pynet_bokeh.renderers import get_renderer

REPO = Path(__file__).resolve().parents[1]
GLIBC = _glibc() is not None


def _rss_mb():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def _he_scaled_pynet(seed=0):
    """PyNET with He-normal kernels: an image that varies (the default init's stddev 0.01
    gives a flat grey), so a difference in the forward pass shows."""
    model = build_pynet()
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        kernel = getattr(layer, "kernel", None)
        if kernel is not None:
            fan_in = int(np.prod(kernel.shape[:-1]))
            kernel.assign(rng.normal(0.0, np.sqrt(2.0 / fan_in), kernel.shape).astype(np.float32))
    return model


def test_renderer_output_matches_the_plain_keras_call_on_a_real_photo(ebb_samples):
    """The renderer (weights' setup memory released, forward inside returning_freed_heap, feature
    maps as channel groups: `grouped_forward`) gives the numbers of an eager Keras call of the
    level-1 model on the same input, to float32 rounding (its sums over input channels are taken
    group by group: 8.5e-6 here)."""
    photo_path = sorted((ebb_samples / "images").glob("*.jpg"))[0]
    photo = image_io.read_photo(photo_path)
    depth = image_io.read_depth(ebb_samples / "depth_maps" / f"{photo_path.stem}.png")
    photo = np.clip(image_io.resize_bicubic(photo, (128, 192)), 0, 1)
    depth = np.clip(image_io.resize_bicubic(depth[..., None], (64, 96))[..., 0], 0, 1)
    model = _he_scaled_pynet()
    release_setup_memory()
    out = get_renderer("pynet", model=model).render(photo, depth)
    x = image_io.ebb_input(photo, depth)[None]
    expected = np.clip(level_model(model, 1)(x, training=False).numpy()[0], 0.0, 1.0)
    assert out.shape == (128, 192, 3)
    assert float(np.std(expected)) > 0.05  # an image, not a flat grey
    assert float(np.max(np.abs(out - expected))) <= 2e-5


@pytest.mark.skipif(not GLIBC, reason="glibc's malloc_trim only")
def test_returning_freed_heap_gives_freed_heap_pages_back_and_stops():
    """Blocks below the mmap threshold, freed under a live block, stay resident until trimmed."""
    blocks = [bytearray(64 * 1024) for _ in range(2048)]  # 128 MB of heap, each page touched
    keep = bytearray(64 * 1024)  # above them: the heap's top cannot shrink by itself
    del blocks
    before = _rss_mb()
    with returning_freed_heap(interval_s=0.01):
        time.sleep(0.2)
        during = _rss_mb()
    assert before - during >= 64, (before, during)
    assert not any(t.name == "pynet-bokeh-heap-trim" for t in threading.enumerate())
    del keep


@pytest.mark.slow
def test_render_peak_above_the_tensorflow_import(tf1_prefix):
    """bench/forward.py's renderer path at 512 x 768 input (photo 1024 x 1536, seed-0 TF1
    weights), each in a fresh process: its peak RSS above the TensorFlow import alone was
    501 MB before the kernel-cache release and heap trimming, 455 MB after, ~400 MB with
    grouped_forward."""
    code = (
        "import sys; sys.path.insert(0, 'bench'); import forward; "
        f"print(forward.render_peak_mb(0, 0), forward.render_peak_mb(512, 768, {str(tf1_prefix)!r}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    base, peak = (float(v) for v in result.stdout.split()[-2:])
    assert peak - base <= 425, (base, peak)
