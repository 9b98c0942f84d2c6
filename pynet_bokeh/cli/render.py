"""`pynet-bokeh render`: every photo of the inputs through one method, written at the photo's
size. Existing outputs are skipped (an interrupted run resumes); no input is ever overwritten;
a failing photo is reported and the rest go on."""

from __future__ import annotations

import logging
from pathlib import Path

from pynet_bokeh.cli import flags as cli_flags
from pynet_bokeh.errors import BadDataError, UsageError

log = logging.getLogger(__name__)

RENDER_FLAGS = (*cli_flags.method_flags(), "depth_dir", "output_dir")


def add_render_parser(sub):
    render = sub.add_parser(
        "render",
        help="render bokeh for photos with any method (pynet, deeplens, classical, ...)",
        description=__doc__.splitlines()[0],
    )
    render.add_argument("inputs", nargs="+", help="photos (JPEG/PNG) or folders of photos")
    cli_flags.add_argparse(render, RENDER_FLAGS)
    render.add_argument("--format", default="png", choices=("png", "jpg"))
    render.add_argument("--overwrite", action="store_true", help="redo existing outputs")
    render.set_defaults(func=run_render)
    return render


def run_render(args):
    if args.output_dir is None:
        raise UsageError("--output_dir is required: the folder the renders go to")
    controls = cli_flags.controls_from_flags(args)
    renderer = cli_flags.renderer_from_flags(args)
    renderer.check_controls(**controls)
    written, failures = render_files(
        renderer,
        args.inputs,
        args.output_dir,
        depth_dir=args.depth_dir,
        suffix="." + args.format,
        overwrite=args.overwrite,
        **controls,
    )
    print(f"wrote {len(written)} image(s) to {args.output_dir}; {len(failures)} failed")
    for photo, message in failures:
        print(f"  FAILED {photo}: {message}")
    return 1 if failures else 0


def render_files(
    renderer,
    inputs,
    output_dir,
    depth_dir=None,
    suffix=".png",
    overwrite=False,
    focus=None,
    focus_disparity=None,
    blur=None,
    beside_inputs=False,
):
    """Renders every photo named by `inputs` into `output_dir/<stem><suffix>` with `renderer`
    (photos sharing a stem: `<name><suffix>`, see `files.plan_outputs`).

    The depth map is read when the method needs it, or when `depth_dir` is given. Refuses an
    output folder that holds an input (photo or depth map) or cannot be written; skips outputs
    that exist unless `overwrite`. Returns (written, failures), failures being (photo,
    message) pairs.
    """
    import keras

    from pynet_bokeh import image_io
    from pynet_bokeh.files import check_writable, plan_outputs, remove_stale_temporaries
    from pynet_bokeh.inference import DepthMapMissingError, find_depth_map, list_photos

    renderer.check_controls(focus=focus, focus_disparity=focus_disparity, blur=blur)
    photos = list_photos(inputs)
    if not photos:
        raise BadDataError(f"No JPEG/PNG photos found in {', '.join(map(str, inputs))}.")
    # Every input is protected: photos, their depth maps and the depth folder.
    depth_maps = {}
    for photo_path in photos:
        try:
            depth_maps[photo_path] = find_depth_map(photo_path, depth_dir)
        except DepthMapMissingError:
            pass  # reported for this photo below, if its method needs one
    protected = list(depth_maps.values()) + ([Path(depth_dir)] if depth_dir is not None else [])
    planned = plan_outputs(
        photos, output_dir, suffix, protected=protected, beside_inputs=beside_inputs
    )
    output_dir = Path(output_dir)
    check_writable(output_dir, "--output_dir")
    remove_stale_temporaries(output_dir)  # a run killed while writing
    written, failures = [], []
    progress = keras.utils.Progbar(len(photos), unit_name="photo")
    for i, (photo_path, out_path) in enumerate(planned):
        try:
            if out_path.exists() and not overwrite:
                log.info("%s exists, skipped (use --overwrite to redo it).", out_path)
            else:
                photo = image_io.read_photo(photo_path)
                depth = None
                if renderer.needs_depth or depth_dir is not None:
                    depth_path = depth_maps.get(photo_path) or find_depth_map(photo_path, depth_dir)
                    depth = image_io.fit_depth(
                        image_io.read_depth(depth_path), photo.shape, str(depth_path)
                    )
                out = renderer.render(
                    photo, depth, focus=focus, focus_disparity=focus_disparity, blur=blur
                )
                image_io.write_image(out_path, out)
                written.append(out_path)
        except (OSError, ValueError) as err:
            failures.append((photo_path, str(err)))
            log.error("%s: %s", photo_path, err)
        progress.update(i + 1)
    return written, failures
