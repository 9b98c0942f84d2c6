"""EBB!-format depth maps for a folder of photos or a whole EBB!-layout data set.

    depth-tools-generate --input photos/ --weights best_generalization_net_G.pth
    python -m depth_tools.generate --input EBB/ --weights net_G.weights.h5   # every split

Output (what EBB! stores and PyNET-Bokeh reads): one 8-bit grayscale PNG per photo,
``<stem>.png``, at half the photo's size, inverse depth min-max normalised per map to 0..255,
near = bright; a flat prediction, which has no min-max, is written as 255 everywhere ("all
near", so nothing gets blurred). Where the maps go: for a data set root (a folder with
``original/``, or whose sub-folders have one) each split's ``original/`` into its
``original_depth/``; for a photo folder named ``original`` its sibling ``original_depth/``; for
any other folder ``<folder>/depth_maps/`` (where ``pynet-bokeh render`` looks); or ``--output``.

The network runs at a working size: the photo resized (bilinear, aspect kept) so that its long
side is ``--working_size`` pixels, each side rounded to the source's multiple (16 for MegaDepth);
its prediction is resized to half the photo's size before normalisation. Maps that exist are
skipped unless ``--overwrite``; each file is written atomically, so an interrupted run is
resumed by running the same command again.

Depth sources (``--model``) live in ``DEPTH_SOURCES``, name -> factory. A factory takes the
weights path (or None) and returns a :class:`DepthSource`; another module can add one:

    from depth_tools.generate import DepthSource, register_depth_source

    @register_depth_source("my-net")
    def _my_net(weights):
        model = ...  # load from `weights`; raise MissingWeightsError if it is None
        return DepthSource(
            name="my-net",
            predict=lambda rgb: model(rgb),  # (N, h, w, 3) float32 RGB in [0,1] -> (N, h, w)
            output="inverse_depth",          # or "depth" or "log_depth": what predict returns
            multiple=32,                     # h and w are multiples of this
        )

``depth_tools.dpt_source`` is imported on demand if it exists, so its sources need no other
registration. ``output`` tells how to get inverse depth: "log_depth" (larger = farther;
inverse = exp(-x)), "depth" (larger = farther; inverse = 1/x), "inverse_depth" (disparity,
larger = nearer; used as is).

Without weights the command refuses, unless ``--fallback``: then a geometric prior
(``fallback_prior``: bottom = near, a centred subject) is written, with a loud warning and a
``<stem>.fallback.json`` note beside each such map. A later run with weights replaces them.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
from absl import app, flags, logging

from depth_tools._files import atomic_path

__all__ = [
    "DEPTH_SOURCES",
    "DepthSource",
    "FallbackDepthWarning",
    "FLAT_VALUE",
    "MissingWeightsError",
    "depth_map_for_photo",
    "encode_ebb_depth",
    "fallback_prior",
    "generate_depth_maps",
    "get_depth_source",
    "megadepth_source",
    "plan_jobs",
    "register_depth_source",
    "to_inverse_depth",
    "working_size",
]

DEFAULT_WORKING_SIZE = 512  # long side; MegaDepth's demo ran at 384 x 512
# A map whose inverse depth varies by less than this fraction of its maximum is flat: it has
# no min-max, and is written as FLAT_VALUE everywhere (255 = all near, "all in focus").
FLAT_RTOL = 1e-6
FLAT_VALUE = 255
FALLBACK_METHOD = "geometric-prior"
SIDECAR_SUFFIX = ".fallback.json"
PLUGIN_MODULES = ("depth_tools.dpt_source",)
_OUTPUT_KINDS = ("log_depth", "depth", "inverse_depth")


class MissingWeightsError(FileNotFoundError):
    """A depth source needs weights and none were given."""


class FallbackDepthWarning(UserWarning):
    """Depth maps were made by the geometric prior, not by a depth network."""


@dataclasses.dataclass
class DepthSource:
    """A depth network as the generator sees it.

    predict: (N, h, w, 3) float32 RGB in [0, 1], h and w multiples of ``multiple`` ->
        (N, h, w) or (N, h, w, 1) array of ``output`` kind.
    output: "log_depth", "depth" or "inverse_depth" (see the module docstring).
    """

    name: str
    predict: Callable[[np.ndarray], np.ndarray]
    output: str
    multiple: int = 16
    description: str = ""

    def __post_init__(self):
        if self.output not in _OUTPUT_KINDS:
            raise ValueError(f"DepthSource {self.name!r}: output must be one of {_OUTPUT_KINDS}")

    @property
    def larger_is_nearer(self):
        return self.output == "inverse_depth"


DEPTH_SOURCES: dict[str, Callable[[str | None], DepthSource]] = {}


def register_depth_source(name):
    """Decorator adding ``factory(weights) -> DepthSource`` to ``DEPTH_SOURCES`` as ``name``."""

    def add(factory):
        DEPTH_SOURCES[name] = factory
        return factory

    return add


def _load_plugins():
    for module in PLUGIN_MODULES:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as err:
            if err.name != module:  # the plugin exists but is broken: say so
                raise


def get_depth_source(name, weights=None):
    """The registered source ``name`` built with ``weights`` (raises MissingWeightsError when
    the source needs weights and ``weights`` is None)."""
    if name not in DEPTH_SOURCES:
        _load_plugins()
    if name not in DEPTH_SOURCES:
        raise ValueError(
            f"--model {name!r}: unknown depth source; available: {sorted(DEPTH_SOURCES)}"
        )
    return DEPTH_SOURCES[name](weights)


@register_depth_source("megadepth")
def _megadepth_source(weights):
    from depth_tools.megadepth import build_megadepth, check_weights_path, load_megadepth_weights

    if weights is None:
        raise MissingWeightsError(
            "MegaDepth needs its weights: download best_generalization_net_G.pth (MegaDepth "
            "project page, Li & Snavely 2018) and pass --weights PATH (.pth or a .weights.h5 "
            "from depth-tools-convert); or pass --fallback for a geometric prior that is NOT a "
            "depth estimate."
        )
    check_weights_path(weights)  # before the (slow) build
    model = load_megadepth_weights(build_megadepth(), weights)
    return megadepth_source(model, f"weights {Path(weights).name}")


def megadepth_source(model, weights_note=""):
    """A DepthSource running a ``build_megadepth()`` model (compiled once for all shapes)."""
    import tensorflow as tf

    from depth_tools.megadepth import MEGADEPTH_MULTIPLE

    # One trace for every batch and working size (tracing the 500-layer graph takes seconds).
    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)])
    def predict(rgb):
        return model(rgb, training=False)

    return DepthSource(
        name="megadepth",
        predict=lambda rgb: predict(tf.convert_to_tensor(rgb, tf.float32)).numpy(),
        output="log_depth",
        multiple=MEGADEPTH_MULTIPLE,
        description=f"MegaDepth hourglass (Li & Snavely 2018) {weights_note}".strip(),
    )


# --- encoding -----------------------------------------------------------------------------


def to_inverse_depth(pred, output):
    """Inverse depth (up to a positive scale, which min-max normalisation removes) in float64.

    log depth: exp(-(x - min x)), i.e. exp(-x) rescaled so that it cannot overflow.
    """
    pred = np.asarray(pred, np.float64)
    if not np.all(np.isfinite(pred)):
        raise ValueError("the depth prediction has NaN or infinite values")
    if output == "log_depth":
        return np.exp(-(pred - pred.min()))
    if output == "depth":
        floor = max(float(np.abs(pred).max()), 1e-30) * 1e-6  # no division by zero / sign flip
        return 1.0 / np.maximum(pred, floor)
    if output == "inverse_depth":
        return pred
    raise ValueError(f"unknown prediction kind {output!r}; expected one of {_OUTPUT_KINDS}")


def encode_ebb_depth(inverse):
    """EBB! encoding of an inverse-depth map: round(255 (inv - min) / (max - min)), uint8,
    near = bright. A flat map (range below FLAT_RTOL of its magnitude) is FLAT_VALUE."""
    inv = np.asarray(inverse, np.float64)
    if not np.all(np.isfinite(inv)):
        raise ValueError("inverse depth has NaN or infinite values")
    lo, hi = float(inv.min()), float(inv.max())
    if hi - lo <= FLAT_RTOL * max(abs(lo), abs(hi), 1e-300):
        return np.full(inv.shape, FLAT_VALUE, np.uint8)
    return np.round(255.0 * (inv - lo) / (hi - lo)).astype(np.uint8)


def fallback_prior(height, width):
    """Geometric prior used by ``--fallback`` (NOT a depth estimate), as inverse depth:
    0.6 * (row / (H - 1)) (ground plane: bottom = near) + 0.4 * a centred Gaussian subject
    (centre at 55% height, sigma 25% of width and 30% of height). Same for every photo."""
    y = np.linspace(0.0, 1.0, height)[:, None]
    x = np.linspace(0.0, 1.0, width)[None, :]
    subject = np.exp(-((x - 0.5) ** 2) / (2 * 0.25**2) - ((y - 0.55) ** 2) / (2 * 0.30**2))
    return 0.6 * np.broadcast_to(y, (height, width)) + 0.4 * subject


def working_size(height, width, long_side, multiple):
    """(h, w) with the long side near ``long_side``, aspect kept, each a multiple of
    ``multiple`` (at least one multiple)."""
    if long_side <= 0:
        raise ValueError(f"--working_size must be positive, got {long_side}")
    scale = long_side / max(height, width)
    return tuple(
        max(multiple, int(round(s * scale / multiple)) * multiple) for s in (height, width)
    )


def depth_map_for_photo(rgb, source=None, working_long_side=DEFAULT_WORKING_SIZE):
    """One photo's EBB! depth map in memory: uint8, half the photo's size, near = bright.

    ``rgb``: H x W x 3 float in [0, 1]; ``source``: a DepthSource, or None for the geometric
    ``fallback_prior`` (NOT a depth estimate: say so wherever it is shown)."""
    from pynet_bokeh import image_io

    half = image_io.half_size(rgb.shape)
    if source is None:
        return encode_ebb_depth(fallback_prior(*half))
    hw = working_size(rgb.shape[0], rgb.shape[1], working_long_side, source.multiple)
    small = np.clip(_resize_bilinear(np.asarray(rgb, np.float32), hw), 0.0, 1.0)
    pred = np.asarray(source.predict(small[None]))
    inverse = to_inverse_depth(pred.reshape(pred.shape[1:3]), source.output)
    return encode_ebb_depth(image_io.resize_bicubic(inverse.astype(np.float32), half))


# --- jobs ---------------------------------------------------------------------------------


def default_depth_dir(photo_dir):
    """EBB! convention: ``original/`` -> sibling ``original_depth/``; else ``<dir>/depth_maps``."""
    photo_dir = Path(photo_dir)
    if photo_dir.name == "original":
        return photo_dir.parent / "original_depth"
    return photo_dir / "depth_maps"


def _split_dirs(root):
    """A data set root's ``original/`` folders: its own, or its sub-folders' (EBB! splits)."""
    if (root / "original").is_dir():
        return [root / "original"]
    return sorted(p / "original" for p in root.iterdir() if (p / "original").is_dir())


def plan_jobs(inputs, output=None):
    """(photo, depth map path) pairs for ``inputs`` (photo files, photo folders or EBB! data set
    roots). Raises on no photos, two photos with one map name, or a map that would replace a
    photo."""
    from pynet_bokeh.inference import list_photos

    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    jobs = []
    for item in map(Path, inputs):
        if not item.exists():
            raise FileNotFoundError(f"--input {item}: no such file or folder")
        splits = _split_dirs(item) if item.is_dir() else []
        if splits and output is not None:
            raise ValueError(
                f"--input {item} is an EBB! data set root (maps go to each split's "
                "original_depth/): leave out --output, or point --input at one photo folder"
            )
        for folder in splits or [item]:
            for photo in list_photos([folder]):
                out_dir = Path(output) if output is not None else default_depth_dir(photo.parent)
                jobs.append((photo, out_dir / f"{photo.stem}.png"))
    if not jobs:
        raise FileNotFoundError(
            f"--input {', '.join(map(str, inputs))}: no JPEG/PNG photos found (nor an EBB! "
            "data set root with original/ folders)"
        )
    photos = {p.resolve() for p, _ in jobs}
    seen = {}
    for photo, out in jobs:
        key = out.resolve()
        if key in seen:
            raise ValueError(f"{seen[key]} and {photo} would both write {out}: rename one")
        if key in photos:
            raise ValueError(f"the depth map {out} would replace a photo: choose another --output")
        seen[key] = photo
    return jobs


def _sidecar(out_path):
    return out_path.with_name(out_path.stem + SIDECAR_SUFFIX)


def _is_done(out_path, method):
    """A finished map: exists, decodes as an 8-bit single-channel image, and was made by the
    same kind of method (a fallback map is redone once a network is available)."""
    from pynet_bokeh import image_io

    if not out_path.is_file():
        return False
    if _sidecar(out_path).is_file() and method != FALLBACK_METHOD:
        logging.info("%s was made by the fallback prior: redoing it with %s", out_path, method)
        return False
    try:
        image_io.read_depth(out_path)
    except image_io.ImageFileError as err:
        logging.warning("%s is not a valid depth map (%s): redoing it", out_path, err)
        return False
    return True


def _write_json(path, obj):
    with atomic_path(path, suffix=".json") as tmp:
        tmp.write_text(json.dumps(obj, indent=2))


def _warn_fallback():
    message = (
        "\n" + "!" * 78 + "\n"
        "FALLBACK DEPTH: no depth network weights were given, so these depth maps are a\n"
        "GEOMETRIC PRIOR (bottom = near, a centred subject), the same for every photo, NOT a\n"
        "depth estimate. Bokeh rendered with them ignores the scene. Each such map has a\n"
        f"<stem>{SIDECAR_SUFFIX} note beside it; rerun with --weights to replace them.\n" + "!" * 78
    )
    logging.warning(message)
    warnings.warn(message, FallbackDepthWarning, stacklevel=3)


@dataclasses.dataclass
class GenerateResult:
    written: list
    skipped: list
    failed: list  # (photo, message)


def _resize_bilinear(image, size):
    import tensorflow as tf

    if tuple(image.shape[:2]) == tuple(size):
        return image
    return tf.image.resize(image, size, method="bilinear", antialias=True).numpy()


def generate_depth_maps(
    jobs,
    source=None,
    working_long_side=DEFAULT_WORKING_SIZE,
    batch_size=4,
    overwrite=False,
    progress=True,
):
    """Write EBB!-format depth maps for ``jobs`` ((photo, map path) pairs, see ``plan_jobs``).

    ``source``: a DepthSource, or None for the geometric fallback prior (loud warning, sidecar
    note). Photos whose working sizes match are run in batches of ``batch_size``. Skips finished
    maps unless ``overwrite``; a photo that fails is reported and the rest go on.
    """
    import keras

    from pynet_bokeh import image_io

    method = FALLBACK_METHOD if source is None else source.name
    if source is None:
        _warn_fallback()
    if batch_size < 1:
        raise ValueError(f"--batch_size must be at least 1, got {batch_size}")
    if source is not None:
        working_size(1, 1, working_long_side, source.multiple)  # fail before any work
    result = GenerateResult([], [], [])
    bar = keras.utils.Progbar(len(jobs), unit_name="photo") if progress else None
    done = 0
    start = time.perf_counter()
    todo = []
    for photo, out in jobs:
        if not overwrite and _is_done(out, method):
            result.skipped.append(out)
        else:
            todo.append((photo, out))
    done += len(result.skipped)
    if bar is not None and done:
        bar.update(done)
    if result.skipped:
        logging.info("%d map(s) exist, skipped (use --overwrite to redo them)", len(result.skipped))

    def flush(batch):
        nonlocal done
        if not batch:
            return
        try:
            if source is None:
                preds = [fallback_prior(*image_io.half_size(shape)) for _, _, shape, _ in batch]
                kind = "inverse_depth"
            else:
                x = np.stack([item[3] for item in batch]).astype(np.float32)
                preds = np.asarray(source.predict(x))
                preds = preds.reshape(preds.shape[:3])
                kind = source.output
            for (photo, out, shape, _), pred in zip(batch, preds, strict=True):
                try:
                    inverse = to_inverse_depth(pred, kind)
                    inverse = image_io.resize_bicubic(
                        inverse.astype(np.float32), image_io.half_size(shape)
                    )
                    png = encode_ebb_depth(inverse)
                    out.parent.mkdir(parents=True, exist_ok=True)
                    if source is None:  # the note first: a fallback map never lacks it
                        _write_json(
                            _sidecar(out),
                            {
                                "method": FALLBACK_METHOD,
                                "note": "geometric prior (bottom = near, centred subject), NOT a "
                                "depth estimate; made because no depth weights were given",
                                "photo": photo.name,
                                "size_hw": list(png.shape),
                                "generator": "depth_tools.generate",
                            },
                        )
                    image_io.write_image(out, png)
                    if source is not None and _sidecar(out).exists():
                        _sidecar(out).unlink()
                    result.written.append(out)
                except (OSError, ValueError) as err:
                    result.failed.append((photo, str(err)))
                    logging.error("%s: %s", photo, err)
        except (OSError, ValueError) as err:
            for photo, *_ in batch:
                result.failed.append((photo, str(err)))
                logging.error("%s: %s", photo, err)
        done += len(batch)
        if bar is not None:
            bar.update(done)
        batch.clear()

    batch, batch_hw = [], None
    for photo, out in todo:
        try:
            rgb = image_io.read_photo(photo)
        except (OSError, ValueError) as err:
            result.failed.append((photo, str(err)))
            logging.error("%s: %s", photo, err)
            done += 1
            continue
        if source is None:
            hw, small = None, None
        else:
            hw = working_size(rgb.shape[0], rgb.shape[1], working_long_side, source.multiple)
            small = np.clip(_resize_bilinear(rgb, hw), 0.0, 1.0)
        if batch and (hw != batch_hw or len(batch) >= batch_size):
            flush(batch)
        batch_hw = hw
        batch.append((photo, out, rgb.shape, small))
    flush(batch)
    elapsed = time.perf_counter() - start
    n = len(result.written)
    logging.info(
        "%s: wrote %d map(s), skipped %d, failed %d in %.1f s (%.2f s/map)",
        method,
        n,
        len(result.skipped),
        len(result.failed),
        elapsed,
        elapsed / max(n, 1),
    )
    return result


# --- command line ---------------------------------------------------------------------------


def define_flags(fv=flags.FLAGS):
    """Declare this CLI's flags on ``fv`` (at run time, not on import)."""
    flags.DEFINE_multi_string(
        "input", None, "Photo file(s), photo folder(s) or EBB! data set root(s).", flag_values=fv
    )
    flags.DEFINE_string(
        "output",
        None,
        "Folder for the maps (default: original/ -> original_depth/, else "
        "<folder>/depth_maps/; data set roots: each split's original_depth/).",
        flag_values=fv,
    )
    flags.DEFINE_string("model", "megadepth", "Depth source (see DEPTH_SOURCES).", flag_values=fv)
    flags.DEFINE_string(
        "weights",
        None,
        "Weights of --model, e.g. best_generalization_net_G.pth or a "
        ".weights.h5 from depth-tools-convert.",
        flag_values=fv,
    )
    flags.DEFINE_integer(
        "working_size",
        DEFAULT_WORKING_SIZE,
        "Long side in pixels at which the network runs "
        "(aspect kept, rounded to the network's multiple).",
        flag_values=fv,
    )
    flags.DEFINE_integer("batch_size", 4, "Photos per network call.", flag_values=fv)
    flags.DEFINE_bool("overwrite", False, "Redo maps that already exist.", flag_values=fv)
    flags.DEFINE_bool(
        "fallback",
        False,
        "Without --weights, write a geometric prior (bottom = near, centred "
        "subject; NOT a depth estimate) instead of refusing.",
        flag_values=fv,
    )


def main(argv, fv=flags.FLAGS):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}; use --input")
    if not fv.input:
        raise app.UsageError("--input is required: a photo folder or an EBB! data set root")
    try:
        jobs = plan_jobs(fv.input, fv.output)
        try:
            source = get_depth_source(fv.model, fv.weights)
        except MissingWeightsError:
            if not fv.fallback or fv.weights is not None:
                raise
            source = None
        result = generate_depth_maps(
            jobs, source, fv.working_size, fv.batch_size, overwrite=fv.overwrite
        )
    except (OSError, ValueError, KeyError) as err:
        raise SystemExit(f"depth-tools-generate: error: {err}") from err
    print(
        f"{len(result.written)} depth map(s) written, {len(result.skipped)} skipped, "
        f"{len(result.failed)} failed"
    )
    for photo, message in result.failed:
        print(f"  FAILED {photo}: {message}")
    return 1 if result.failed else 0


def run():
    define_flags()
    app.run(main)


if __name__ == "__main__":
    # Under `python -m` this file is `__main__`; plugins register into `depth_tools.generate`,
    # so run that module's copy to see them.
    from depth_tools.generate import run as _run

    _run()
