"""`pynet-bokeh-deeplens`: shallow depth of field with DeepLens, focus point and aperture chosen.

    pynet-bokeh-deeplens --checkpoint model/model_end2end/model photo.jpg [more.jpg ...]
        [--focus X,Y | --focus_depth D] [--aperture 0.5 [--aperture 1.0 ...]]
        [--depth_dir DIR] [--output_dir DIR]

For each photo writes `<stem>_deeplens_a<aperture>.png` per aperture (several apertures give a
sequence to compare) and `<stem>_deeplens_depth.png` (the depth map used: brighter = nearer),
beside the photo unless --output_dir is given. Inputs are never overwritten; writes are atomic.
Images have the photo's size with the long side capped at 1280 (the original evaluator's cap);
the depth map has the working size (a quarter of that for photos of 1280 and more).
"""

import logging
import os
import time

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_string(
    "checkpoint",
    None,
    "DeepLens weights: the authors' TF1 checkpoint prefix (model/model_end2end/model from "
    "scott89/deeplens_eval, the path before .index / .data-*), or a training stage's folder / "
    "final.weights.h5 (train_level.py --model deeplens).",
)
flags.DEFINE_string("focus", None, "focus point X,Y in photo pixels (default: the photo's centre)")
flags.DEFINE_float(
    "focus_depth", None, "depth to keep sharp, 0 (far) .. 1 (near), instead of --focus"
)
flags.DEFINE_multi_float(
    "aperture", [0.5], "aperture 0 (all sharp) .. 1 (shallowest); repeat for a sequence"
)
flags.DEFINE_string(
    "depth_dir",
    None,
    "optional folder of <stem>.png depth maps (8-bit, brighter = nearer) used instead of "
    "DeepLens' own depth network",
)
flags.DEFINE_string("output_dir", None, "where outputs go (default: beside each photo)")
flags.DEFINE_enum("format", "png", ["png", "jpg"], "output image format")

log = logging.getLogger("pynet_bokeh.deeplens")


class UsageError(ValueError):
    """A flag or argument is wrong."""


def parse_focus(text):
    """'X,Y' -> (x, y) ints, with an error naming --focus."""
    try:
        x, y = (int(round(float(v))) for v in text.split(","))
    except ValueError:
        raise UsageError(
            f"--focus must be X,Y in photo pixels (e.g. 640,360), got {text!r}."
        ) from None
    return x, y


def output_paths(photo_path, apertures, output_dir=None, fmt="png"):
    """{aperture: image path} and the depth path for one photo."""
    stem = os.path.splitext(os.path.basename(photo_path))[0]
    folder = output_dir or os.path.dirname(os.path.abspath(photo_path))
    images = {a: os.path.join(folder, f"{stem}_deeplens_a{a:.2f}.{fmt}") for a in apertures}
    return images, os.path.join(folder, f"{stem}_deeplens_depth.png")


def check_arguments(photos, apertures, focus, focus_depth, output_dir=None, fmt="png"):
    """Validates everything before any model is built; returns the parsed focus point."""
    if not photos:
        raise UsageError("no photos given: pass one or more JPEG/PNG paths after the flags.")
    if focus is not None and focus_depth is not None:
        raise UsageError("give either --focus X,Y or --focus_depth D, not both.")
    if focus_depth is not None and not 0.0 <= focus_depth <= 1.0:
        raise UsageError(f"--focus_depth must lie in [0, 1], got {focus_depth}.")
    for a in apertures:
        if not 0.0 <= a <= 1.0:
            raise UsageError(f"--aperture must lie in [0, 1], got {a}.")
    inputs = {os.path.realpath(p) for p in photos}
    for p in photos:
        if not os.path.isfile(p):
            raise UsageError(f"photo {p!r} does not exist.")
        images, depth = output_paths(p, apertures, output_dir, fmt)
        for out in [*images.values(), depth]:
            if os.path.realpath(out) in inputs:
                raise UsageError(
                    f"output {out!r} would overwrite an input photo: rename it or pass --output_dir."
                )
    return None if focus is None else parse_focus(focus)


def render_photos(
    model,
    photos,
    apertures,
    focus=None,
    focus_depth=None,
    depth_dir=None,
    output_dir=None,
    fmt="png",
):
    """Renders every photo at every aperture; returns the list of files written."""
    import numpy as np

    from pynet_bokeh.image_io import read_depth, read_photo, write_image
    from pynet_bokeh.models.deeplens import render_deeplens

    written, total, done, start = [], len(photos) * len(apertures), 0, time.time()
    for path in photos:
        photo = read_photo(path)
        depth = None
        if depth_dir is not None:
            stem = os.path.splitext(os.path.basename(path))[0]
            depth = read_depth(os.path.join(depth_dir, stem + ".png"))
        images, depth_path = output_paths(path, apertures, output_dir, fmt)
        for aperture, out_path in images.items():
            image, depth = render_deeplens(
                model,
                photo,
                focus_xy=focus,
                aperture=aperture,
                depth=depth,
                focus_depth=focus_depth,
            )
            written.append(write_image(out_path, image))
            done += 1
            rate = (time.time() - start) / done
            log.info(
                "[%d/%d] %s aperture %.2f -> %s (%.1f s/image, ETA %.0f s)",
                done, total, path, aperture, out_path, rate, rate * (total - done),
            )  # fmt: skip
        written.append(write_image(depth_path, np.clip(depth, 0.0, 1.0)))
    return written


def main(argv):
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    # Each module is traced once per new photo size by design; TF's retracing warning is noise.
    logging.getLogger("tensorflow").addFilter(
        lambda r: "triggered tf.function retracing" not in r.getMessage()
    )
    photos = argv[1:]
    if FLAGS.checkpoint is None:
        raise app.UsageError(
            "--checkpoint is required: the DeepLens checkpoint prefix, e.g. "
            "deeplens_eval/model/model_end2end/model (from github.com/scott89/deeplens_eval)."
        )
    try:
        focus = check_arguments(
            photos, FLAGS.aperture, FLAGS.focus, FLAGS.focus_depth, FLAGS.output_dir, FLAGS.format
        )
    except UsageError as err:
        raise app.UsageError(str(err)) from None

    from pynet_bokeh.models import deeplens

    try:
        prefix = deeplens.resolve_weights(FLAGS.checkpoint)  # before the slow model build
        model = deeplens.load_deeplens_checkpoint(deeplens.build_deeplens(), prefix)
        written = render_photos(
            model,
            photos,
            FLAGS.aperture,
            focus=focus,
            focus_depth=FLAGS.focus_depth,
            depth_dir=FLAGS.depth_dir,
            output_dir=FLAGS.output_dir,
            fmt=FLAGS.format,
        )
    except (OSError, ValueError) as err:  # files, checkpoint, focus outside the photo
        log.error("%s", err)
        return 2
    print(f"wrote {len(written)} file(s)")
    return 0


def run():
    app.run(main)


if __name__ == "__main__":
    run()
