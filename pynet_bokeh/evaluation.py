"""Scoring bokeh renderers on an EBB!-layout split, or rendering a folder of photos, with a report.

A renderer is a function (photo H x W x 3, depth map h x w, both in [0, 1]) -> H x W x 3 at the
photo's size. Models run at full resolution (`pynet_bokeh.inference.render_bokeh`: reflection
padding to a multiple of 32, then the pad cropped away), never on crops. Baselines on the same
images: `identity` (the input photo as the output) and `classical` (the depth-driven defocus
renderer of `pynet_bokeh.render.classical`), so a report shows at once whether a model beats
doing nothing.

    samples = dataset_samples("EBB", "test")          # or folder_samples("photos/")
    renderers = {"pynet": model_renderer(model), **baseline_renderers()}
    summary = evaluate(renderers, samples, "eval_out", num_panels=4)

Writes into `out_dir`: `per_image.csv` (one row per image and method), `summary.json` (means
and settings), `report.md` (the table, panels and per-image rows), `panels/<stem>.png`
(input | output | target | error heat map, one row per method) for the first `num_panels`
images, and with `save_outputs` the outputs as `outputs/<method>/<stem>.png` (the method's name with
characters other than letters, digits, `_.-` replaced by `_`).
"""

from __future__ import annotations

import dataclasses
import logging
import re
import time
import warnings
from pathlib import Path

import keras
import numpy as np

from pynet_bokeh import image_io, metrics, report
from pynet_bokeh.files import write_text_atomic

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Sample:
    """One image to evaluate: the photo, its EBB! depth map and (if any) the bokeh target."""

    stem: str
    photo: Path
    depth: Path
    target: Path | None = None


def dataset_samples(root, split="test", limit=None):
    """Samples of an EBB!-layout split (`ROOT/<split>/original`, `original_depth`, `bokeh`).

    Raises ValueError naming the stems whose photo, depth map or target is missing.
    """
    from pynet_bokeh.data.ebb import find_pairs

    pairs = find_pairs(root, split)
    incomplete = [p.stem for p in pairs if None in (p.photo, p.depth, p.bokeh)]
    if incomplete:
        shown = ", ".join(incomplete[:10]) + (" ..." if len(incomplete) > 10 else "")
        raise ValueError(
            f"{root}/{split}: {len(incomplete)} sample(s) lack a photo, depth map or bokeh "
            f"target ({shown}); complete them, or evaluate the photos alone with --photos_dir"
        )
    samples = [Sample(p.stem, Path(p.photo), Path(p.depth), Path(p.bokeh)) for p in pairs]
    return samples[:limit] if limit else samples


def folder_samples(photos_dir, depth_dir=None, limit=None):
    """Samples without targets: the photos in `photos_dir` and their EBB! depth maps.

    Depth maps are found as `pynet_bokeh.inference.find_depth_map` does (`depth_dir`, else
    `depth_maps/`, `original_depth/` or `depth/` beside the photos).
    """
    from pynet_bokeh.inference import find_depth_map, list_photos

    if not Path(photos_dir).is_dir():
        raise FileNotFoundError(f"--photos_dir {photos_dir} is not a folder")
    photos = list_photos([photos_dir])
    if not photos:
        raise FileNotFoundError(f"--photos_dir {photos_dir}: no JPEG/PNG photos found")
    samples = [Sample(p.stem, p, Path(find_depth_map(p, depth_dir))) for p in photos]
    return samples[:limit] if limit else samples


def method_renderer(renderer, focus=None, focus_disparity=None, blur=None):
    """A registry `Renderer` as an evaluation renderer `(photo, depth) -> image`: the depth map
    goes to methods that need it; the controls to methods that take them."""
    controls = {}
    if renderer.takes_focus:
        controls.update(focus=focus, focus_disparity=focus_disparity)
    if renderer.takes_blur:
        controls["blur"] = blur

    def render(photo, depth):
        return renderer.render(photo, depth if renderer.needs_depth else None, **controls)

    return render


def model_renderer(model, level=1):
    """A PyNET (full model or level model) as a renderer at full resolution (`render_bokeh`)."""
    from pynet_bokeh.renderers.pynet import PyNetRenderer

    return method_renderer(PyNetRenderer(model=model, level=level))


def baseline_renderers(**controls):
    """{name: renderer} of the weight-free methods scored beside every model."""
    from pynet_bokeh.renderers import get_renderer

    return {
        name: method_renderer(get_renderer(name), **controls) for name in ("identity", "classical")
    }


def _match_target(out, target, stem, name):
    if out.shape == target.shape:
        return out
    warnings.warn(
        f"{stem}: {name} output {out.shape[:2]} differs from the target's size "
        f"{target.shape[:2]}; resized to it for scoring.",
        stacklevel=3,
    )
    return image_io.resize_bicubic(out, target.shape[:2])


def evaluate(
    renderers,
    samples,
    out_dir,
    num_panels=4,
    protocol="ebb",
    border=metrics.DEFAULT_BORDER,
    crop_size=metrics.DEFAULT_CROP,
    save_outputs=False,
    source="",
    settings=None,
    progress=True,
):
    """Runs every renderer on every sample, scores against targets, writes the report files.

    renderers: {method name: renderer}, in the order the report lists them. A sample that fails
    (unreadable file, ...) is logged, listed under "failures" and skipped. Returns the summary
    dict written to summary.json.
    """
    samples = list(samples)
    if not samples:
        raise ValueError("no samples to evaluate")
    if not renderers:
        raise ValueError("no renderers to evaluate")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    has_targets = all(s.target is not None for s in samples)
    rows, panels, failures = [], [], []
    seconds = {name: [] for name in renderers}
    bar = keras.utils.Progbar(len(samples), unit_name="image") if progress else None
    for i, sample in enumerate(samples):
        try:
            photo = image_io.read_photo(sample.photo)
            depth = image_io.read_depth(sample.depth)
            target = image_io.read_photo(sample.target) if has_targets else None
            outputs = {}
            for name, render in renderers.items():
                start = time.perf_counter()
                out = np.asarray(render(photo, depth), np.float32)
                elapsed = time.perf_counter() - start
                seconds[name].append(elapsed)
                row = {"stem": sample.stem, "method": name, "seconds": elapsed}
                if target is not None:
                    out = _match_target(out, target, sample.stem, name)
                    row.update(
                        metrics.image_metrics(
                            out, target, protocol=protocol, border=border, crop_size=crop_size
                        )
                    )
                rows.append(row)
                outputs[name] = out
                if save_outputs:
                    folder = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_")
                    image_io.write_image(out_dir / "outputs" / folder / f"{sample.stem}.png", out)
            if len(panels) < num_panels:
                image = report.sample_panel(photo, depth, outputs, target)
                rel = f"panels/{sample.stem}.png"
                report.write_panel(out_dir / rel, image)
                panels.append(rel)
        except (OSError, ValueError) as err:
            log.error("%s: %s", sample.stem, err)
            failures.append({"stem": sample.stem, "error": str(err)})
        if bar is not None:
            bar.update(i + 1)
    if len(failures) == len(samples):
        raise RuntimeError(f"every sample failed; the first: {failures[0]['error']}")

    methods = {}
    for name in renderers:
        method_rows = [r for r in rows if r["method"] == name]
        entry = {"seconds": float(np.mean(seconds[name])) if seconds[name] else None}
        if has_targets:
            means = metrics.mean_metrics(method_rows)
            entry.update({k: means[k] for k in metrics.METRICS})
        methods[name] = entry
    summary = {
        "source": source or str(samples[0].photo.parent),
        "has_targets": has_targets,
        "count": len(samples) - len(failures),
        "settings": {
            "protocol": protocol,
            **({"border": border} if protocol == "ebb" else {"crop_size": list(crop_size)}),
            **(settings or {}),
        },
        "methods": methods,
        "failures": failures,
        "files": {
            "per_image": "per_image.csv",
            "report": "report.md",
            "panels": panels,
        },
    }
    columns = ["stem", "method"]
    if has_targets:
        columns += ["psnr", "ssim", "ms_ssim", "ms_ssim_scales"]
    columns.append("seconds")
    report.write_csv(out_dir / "per_image.csv", rows, columns)
    report.write_json(out_dir / "summary.json", summary)
    write_text_atomic(
        out_dir / "report.md",
        report.markdown_report(summary, panels, rows if len(rows) <= 300 else ()),
    )
    return summary
