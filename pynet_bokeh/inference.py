"""Full-resolution PyNET inference on photos: pad by reflection, run, crop, write.

Nothing is cropped away: inputs whose size is not a multiple of 32 are reflection-padded and the
pad is cut from the output, which is written at the photo's own resolution.
"""

import contextlib
import ctypes
import gc
import logging
import sys
import threading
from pathlib import Path

import numpy as np
import tensorflow as tf

from pynet_bokeh import image_io
from pynet_bokeh.errors import BadDataError
from pynet_bokeh.models.grouped_forward import grouped_forward
from pynet_bokeh.models.pynet import INFERENCE_RECOMPUTE, level_model, level_scale
from pynet_bokeh.render.controls import signed_defocus

log = logging.getLogger(__name__)

PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png")
DEPTH_DIR_NAMES = ("original_depth", "depth_maps", "depth")


#: glibc mallopt parameters, and the size from which a buffer gets its own mapping.
_M_MMAP_THRESHOLD, _M_ARENA_MAX = -3, -8
MMAP_THRESHOLD_BYTES = 256 * 1024
#: How often `returning_freed_heap` gives the heap's free pages back while a forward pass runs.
HEAP_TRIM_INTERVAL_S = 0.1
_heap_configured = []
_glibc_handle = []


def _glibc():
    """glibc (ctypes), or None where the C library is not glibc (non-Linux, musl)."""
    if not _glibc_handle:
        libc = None
        if sys.platform.startswith("linux"):
            try:
                libc = ctypes.CDLL("libc.so.6")
                libc.malloc_trim.argtypes = [ctypes.c_size_t]
            except (OSError, AttributeError):  # not glibc (e.g. musl): nothing to tune
                libc = None
        _glibc_handle.append(libc)
    return _glibc_handle[0]


def return_freed_buffers_to_the_os():
    """Makes glibc give large freed buffers back to the OS at once (Linux; once per process).

    TensorFlow's CPU allocator uses malloc. glibc raises its mmap threshold each time a large
    mapped block is freed (up to 32 MB), so after the first layers PyNET's feature maps come
    from the heap arenas, which keep freed memory: at 512 x 768 that retained memory was
    ~150 MB of the forward pass's peak RSS. A fixed threshold keeps every buffer of 256 KB or
    more in its own mapping, returned when TensorFlow frees it; two arenas cap the per-thread
    heaps. Speed is unchanged (a feature map is far larger than the cost of one mmap).
    """
    if _heap_configured:
        return
    _heap_configured.append(True)
    libc = _glibc()
    if libc is None:
        return
    libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)
    libc.mallopt(_M_ARENA_MAX, 2)


def release_setup_memory():
    """Gives back what building and loading a network left behind: TensorFlow's cache of eager
    kernels (one per op and shape: the initializers and weight assignments of every layer) and
    the heap's free pages (glibc). Numbers are unchanged; the next eager op of a new shape
    builds its kernel again (microseconds)."""
    from tensorflow.python.eager import context  # no public API for the kernel cache

    context.context().clear_kernel_cache()
    gc.collect()
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)


@contextlib.contextmanager
def returning_freed_heap(interval_s=HEAP_TRIM_INTERVAL_S):
    """While the block runs, a thread gives the heap's free pages back to the OS every
    `interval_s` (glibc `malloc_trim`; nothing elsewhere).

    The first call of a compiled function builds its graph and executor; what that frees stays
    in glibc's heap (small blocks, below the mmap threshold) while the feature maps are
    allocated: at 512 x 768 ~30 MB of the peak. glibc returns only the top of the heap by
    itself. One trim takes about a millisecond (under 1% of a forward pass at 0.1 s).
    """
    libc = _glibc()
    if libc is None:
        yield
        return
    stop = threading.Event()

    def trim():
        while not stop.wait(interval_s):
            libc.malloc_trim(0)

    thread = threading.Thread(target=trim, name="pynet-bokeh-heap-trim", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        libc.malloc_trim(0)


class DepthMapMissingError(BadDataError, FileNotFoundError):
    """A photo has no depth map; the message says how to make one."""


def predict_padded(fn, x, out_scale, multiple=32):
    """Runs `fn` on `x` (H x W x C or N x H x W x C) reflection-padded to `multiple`, and crops.

    `out_scale` is the output size over the input size (2 for PyNET level 1). `x` may be a
    tf.Tensor: when no padding is needed it reaches `fn` as it is, without a copy.
    """
    if not isinstance(x, tf.Tensor):
        x = np.asarray(x, dtype=np.float32)
    single = len(x.shape) == 3
    batch = x[None] if single else x
    in_h, in_w = int(batch.shape[1]), int(batch.shape[2])
    if isinstance(batch, tf.Tensor) and (in_h % multiple or in_w % multiple):
        batch = batch.numpy()  # padding is done in NumPy (reflect, or edge for tiny inputs)
    padded, _ = image_io.pad_to_multiple(batch, multiple)
    del x, batch
    with returning_freed_heap():
        y = np.asarray(fn(padded))
    h = int(round(in_h * out_scale))
    w = int(round(in_w * out_scale))
    y = y[:, :h, :w]
    return y[0] if single else y


def level_function(model, level=1):
    """A compiled function NHWC input -> the `level` output, for a full PyNET or a level model.

    It runs `grouped_forward` (the same output as calling the model, to float32 rounding, with
    a lower peak memory). Kept on the model object (one per level), so alternating models or
    levels never retraces.
    """
    cache = model.__dict__.setdefault("_level_functions", {})
    if level not in cache:
        return_freed_buffers_to_the_os()
        net = level_model(model, level) if isinstance(model.output, dict) else model

        @tf.function(reduce_retracing=True)
        def run(x):
            return grouped_forward(net, x, recompute=INFERENCE_RECOMPUTE)

        cache[level] = run
    return cache[level]


def render_bokeh(model, photo, depth, level=1, depth_name="depth map", controls=None):
    """Renders bokeh for one photo (H x W x 3 in [0, 1]) and its EBB! depth map.

    Applies the EBB! convention (photo x0.5 bicubic, depth as 4th channel), pads to a multiple
    of 32, runs `level`, crops, and returns float32 H x W x 3 at the photo's size (levels > 1
    are resized up with bicubic interpolation). A controllable model (5 input channels) needs
    `controls` = (focus disparity d_f, blur K): its 5th channel is their signed defocus map.
    """
    x = image_io.ebb_input(photo, depth, depth_name=depth_name)
    k_max = getattr(model, "defocus_k_max", None)
    if k_max is not None:
        if controls is None:
            raise ValueError("a controllable PyNET needs controls=(focus_disparity, blur)")
        c = signed_defocus(x[..., 3], controls[0], controls[1], k_max)
        x = np.concatenate([x, c[..., None]], axis=-1)
    # As a tensor, and the array dropped: one copy of the input while the network runs.
    x = tf.convert_to_tensor(x[None])
    y = predict_padded(level_function(model, level), x, level_scale(level))[0]
    if y.shape[:2] != photo.shape[:2]:
        y = image_io.resize_bicubic(y, photo.shape[:2])
    return np.clip(y, 0.0, 1.0)


def find_depth_map(photo_path, depth_dir=None):
    """The EBB! depth map of a photo: `<depth_dir>/<stem>.png`, else a sibling depth folder.

    Looks in `depth_dir` when given, else in `../original_depth`, `../depth_maps`, `../depth`
    and beside the photo (`<stem>_depth.png`).
    """
    photo_path = Path(photo_path)
    stem = photo_path.stem
    if depth_dir is not None:
        candidates = [Path(depth_dir) / f"{stem}.png"]
    else:
        parent = photo_path.parent
        candidates = [parent.parent / d / f"{stem}.png" for d in DEPTH_DIR_NAMES]
        candidates += [parent / d / f"{stem}.png" for d in DEPTH_DIR_NAMES]
        candidates.append(parent / f"{stem}_depth.png")
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    looked = ", ".join(str(c) for c in candidates)
    raise DepthMapMissingError(
        f"No depth map for {photo_path} (looked for {looked}). PyNET-Bokeh needs an EBB!-format "
        "depth map (8-bit PNG, half the photo's size, near = bright): make one with "
        f"`depth-tools-generate --input {photo_path.parent} --weights best_generalization_net_G.pth` "
        "(MegaDepth), or pass --depth_dir."
    )


def list_photos(inputs):
    """Photos named by `inputs` (files or folders, folders not recursed), sorted, deduplicated."""
    photos = []
    for item in inputs:
        item = Path(item)
        if item.is_dir():
            photos += sorted(p for p in item.iterdir() if p.suffix.lower() in PHOTO_SUFFIXES)
        elif item.is_file():
            photos.append(item)
        else:
            raise FileNotFoundError(f"Input {item} does not exist.")
    seen, unique = set(), []
    for p in photos:
        if p.resolve() not in seen:
            seen.add(p.resolve())
            unique.append(p)
    return unique
