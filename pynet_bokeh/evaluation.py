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

Resuming and shards: `rows.jsonl` in `out_dir` records each finished image as it is done; a
rerun with the same methods, settings and images skips them. `evaluate(..., shard=(I, N))`
scores every N-th image from I (`pynet_bokeh.sharding`), so N processes cover a split once;
`merge_evaluations([dir, ...], out_dir)` joins their folders into one report.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import shutil
import time
import warnings
from pathlib import Path

import keras
import numpy as np

from pynet_bokeh import image_io, metrics, report
from pynet_bokeh.data import splits
from pynet_bokeh.errors import UsageError
from pynet_bokeh.files import write_text_atomic
from pynet_bokeh.sharding import shard_items

ROWS_FILE = "rows.jsonl"

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

    `split` is a folder of ROOT or a named split of `pynet_bokeh.data.splits` ("val294": train/
    images 4400..4693). Raises ValueError naming the stems whose photo, depth map or target is
    missing.
    """
    from pynet_bokeh.data.ebb import find_pairs

    folder, stems = splits.resolve_split(split)
    pairs = splits.select_stems(find_pairs(root, folder), stems)
    if not pairs:
        raise ValueError(
            f"{root}/{folder}: no images of split {split!r} (val294 is train/4400..4693.jpg)"
        )
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


def training_overlap(weights_paths, root, split, samples):
    """Scored stems that the runs behind `weights_paths` trained on (their train_stems.json)."""
    records = [r for path in weights_paths for r in splits.trained_stems_near(path)]
    folder, _ = splits.resolve_split(split)
    return splits.overlap(records, root, folder, [s.stem for s in samples])


def split_notes(split, overlap=()):
    """Report notes for a split: Val294's provenance, and any overlap with training images."""
    notes = [splits.VAL294_NOTE] if split == "val294" else []
    if overlap:
        shown = ", ".join(overlap[:10]) + (" ..." if len(overlap) > 10 else "")
        notes.append(
            f"{len(overlap)} scored image(s) were in the training set of the scored weights "
            f"({shown}): these scores are not held out."
        )
    return notes


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
    lpips=None,
    level=1,
    notes=(),
    shard=None,
):
    """Runs every renderer on every sample, scores against targets, writes the report files.

    renderers: {method name: renderer}, in the order the report lists them. `protocol`: one of
    `metrics.PROTOCOLS`, a sequence of them, or "all" (every protocol, one pass over the images;
    the columns are then "<protocol>/<metric>"); `lpips` (`metrics.build_lpips(...)`) adds an
    LPIPS column; `level` is the PyNET level the outputs come from (the "authors" protocol scores
    levels 2-3 at their own size); `notes` are listed in the report. A sample that fails
    (unreadable file, ...) is logged, listed under "failures" and skipped. Images already done
    by an interrupted run into the same `out_dir` (same methods, settings and images) are not
    redone. shard: (index, count) to score only that shard of `samples`. Returns the summary
    dict written to summary.json.
    """
    all_samples = list(samples)
    samples = shard_items(enumerate(all_samples), shard)
    if not samples:
        raise ValueError("no samples to evaluate" + (f" in shard {shard}" if shard else ""))
    if not renderers:
        raise ValueError("no renderers to evaluate")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    has_targets = all(s.target is not None for s in all_samples)
    if protocol == "all":
        protocol = metrics.PROTOCOLS
    scorer = metrics.Scorer(
        (protocol,) if isinstance(protocol, str) else tuple(protocol),
        border=border,
        crop_size=tuple(crop_size),
        level=level,
        lpips=lpips,
    )
    header = {
        "methods": list(renderers),
        "settings": {**scorer.settings(), **(settings or {})},
        "columns": scorer.columns if has_targets else [],
        "csv_columns": scorer.csv_columns if has_targets else [],
        "notes": [*(scorer.notes() if has_targets else []), *notes],
        "source": source or str(all_samples[0].photo.parent),
        "has_targets": has_targets,
        "samples": [s.stem for s in all_samples],
        "shard": list(shard) if shard else None,
    }
    done = _resume(out_dir / ROWS_FILE, header)
    if done:
        log.info("%s: %d image(s) already done, resuming", out_dir, len(done))
    todo = [(i, s) for i, s in samples if s.stem not in done]
    panels_left = num_panels - sum(1 for e in done.values() if e["panel"])
    bar = keras.utils.Progbar(len(samples), unit_name="image") if progress else None
    with open(out_dir / ROWS_FILE, "a") as record:
        for k, (i, sample) in enumerate(todo):
            entry = _score_sample(
                renderers, sample, out_dir, has_targets, scorer, save_outputs,
                panel=panels_left > 0,
            )  # fmt: skip
            entry["index"] = i
            panels_left -= bool(entry["panel"])
            # One line per finished image, flushed: a killed run loses at most the one it was on.
            record.write(json.dumps(entry, default=_plain) + "\n")
            record.flush()
            done[sample.stem] = entry
            if bar is not None:
                bar.update(len(samples) - len(todo) + k + 1)
    entries = [done[s.stem] for _, s in samples]
    if all(e["failure"] for e in entries):
        raise RuntimeError(f"every sample failed; the first: {entries[0]['failure']['error']}")
    return _write_report(out_dir, header, entries)


def _score_sample(renderers, sample, out_dir, has_targets, scorer, save_outputs, panel):
    """{"stem", "rows": [per method], "seconds": {method: s}, "panel": path, "failure"}."""
    entry = {"stem": sample.stem, "rows": [], "panel": None, "failure": None}
    try:
        photo = image_io.read_photo(sample.photo)
        depth = image_io.read_depth(sample.depth)
        target = image_io.read_photo(sample.target) if has_targets else None
        outputs = {}
        for name, render in renderers.items():
            start = time.perf_counter()
            out = np.asarray(render(photo, depth), np.float32)
            elapsed = time.perf_counter() - start
            row = {"stem": sample.stem, "method": name, "seconds": elapsed}
            if target is not None:
                out = _match_target(out, target, sample.stem, name)
                row.update(scorer.score(out, target))
            entry["rows"].append(row)
            outputs[name] = out
            if save_outputs:
                folder = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_")
                image_io.write_image(out_dir / "outputs" / folder / f"{sample.stem}.png", out)
        if panel:
            rel = f"panels/{sample.stem}.png"
            report.write_panel(out_dir / rel, report.sample_panel(photo, depth, outputs, target))
            entry["panel"] = rel
    except (OSError, ValueError) as err:
        log.error("%s: %s", sample.stem, err)
        entry.update(rows=[], panel=None, failure={"stem": sample.stem, "error": str(err)})
    return entry


def _plain(value):
    """JSON for numpy scalars."""
    return value.item() if hasattr(value, "item") else str(value)


def _read_rows_file(path):
    """(header, {stem: entry}) from a rows.jsonl; a torn last line (a killed run) is dropped."""
    lines = Path(path).read_text().splitlines()
    header, entries = None, {}
    for n, line in enumerate(lines):
        try:
            item = json.loads(line)
        except ValueError:
            if n == len(lines) - 1:
                break
            raise ValueError(
                f"{path}: line {n + 1} is not JSON; delete the file to start over"
            ) from None
        if header is None:
            header = item
        else:
            entries[item["stem"]] = item
    return header, entries


def _resume(path, header):
    """Entries of a previous run with the same header (rewriting the file's torn end); else
    starts the file afresh."""
    if path.is_file():
        try:
            old, entries = _read_rows_file(path)
        except ValueError:
            old, entries = None, {}
        if old == header:
            write_text_atomic(
                path,
                "".join(json.dumps(x, default=_plain) + "\n" for x in [header, *entries.values()]),
            )
            return entries
        if old is not None:
            log.info(
                "%s holds another evaluation (methods or settings differ): starting over", path
            )
    write_text_atomic(path, json.dumps(header) + "\n")
    return {}


def _write_report(out_dir, header, entries):
    """per_image.csv, summary.json and report.md from finished entries; returns the summary."""
    rows = [row for e in entries for row in e["rows"]]
    failures = [e["failure"] for e in entries if e["failure"]]
    panels = [e["panel"] for e in entries if e["panel"]]
    has_targets = header["has_targets"]
    methods = {}
    for name in header["methods"]:
        method_rows = [r for r in rows if r["method"] == name]
        seconds = [r["seconds"] for r in method_rows]
        entry = {"seconds": float(np.mean(seconds)) if seconds else None}
        if has_targets:
            means = metrics.mean_metrics(method_rows, header["columns"])
            entry.update({k: means[k] for k in header["columns"]})
        methods[name] = entry
    summary = {
        "source": header["source"],
        "has_targets": has_targets,
        "count": len(entries) - len(failures),
        "settings": header["settings"],
        "columns": header["columns"],
        "methods": methods,
        "notes": header["notes"],
        "failures": failures,
        "files": {
            "per_image": "per_image.csv",
            "report": "report.md",
            "panels": panels,
        },
    }
    if header.get("shard"):
        summary["shard"] = header["shard"]
    columns = ["stem", "method"]
    if has_targets:
        columns += header["csv_columns"]
    columns.append("seconds")
    report.write_csv(out_dir / "per_image.csv", rows, columns)
    report.write_json(out_dir / "summary.json", summary)
    write_text_atomic(
        out_dir / "report.md",
        report.markdown_report(summary, panels, rows if len(rows) <= 300 else ()),
    )
    return summary


def merge_evaluations(shard_dirs, out_dir):
    """Joins the out_dirs of `evaluate(..., shard=(I, N))` for I = 0 .. N-1 into one report in
    `out_dir` (images in their original order, panels copied). Raises UsageError when a shard
    is missing, repeated, unfinished, or scored other methods, settings or images."""
    shard_dirs = [Path(d) for d in shard_dirs]
    headers, parts = [], []
    for d in shard_dirs:
        path = d / ROWS_FILE
        if not path.is_file():
            raise UsageError(f"--merge {d}: no {ROWS_FILE}; is it an evaluate.py --shard out_dir?")
        header, entries = _read_rows_file(path)
        if not header or not header.get("shard"):
            raise UsageError(f"--merge {d}: not a shard's results (run with --shard I/N)")
        headers.append(header)
        parts.append(entries)
    first = {k: v for k, v in headers[0].items() if k != "shard"}
    for d, h in zip(shard_dirs, headers, strict=True):
        if {k: v for k, v in h.items() if k != "shard"} != first:
            raise UsageError(
                f"--merge {d}: other methods, settings or images than {shard_dirs[0]}; "
                "merge shards of one evaluation"
            )
    count = headers[0]["shard"][1]
    found = sorted(h["shard"][0] for h in headers)
    if found != list(range(count)) or any(h["shard"][1] != count for h in headers):
        raise UsageError(
            f"--merge: need shards 0/{count} .. {count - 1}/{count} once each, got "
            + ", ".join(f"{i}/{n}" for i, n in (h["shard"] for h in headers))
        )
    for d, h, part in zip(shard_dirs, headers, parts, strict=True):
        want = set(shard_items(h["samples"], tuple(h["shard"])))
        if set(part) != want:
            raise UsageError(
                f"--merge {d}: shard {h['shard'][0]}/{count} is unfinished "
                f"({len(set(part) & want)} of {len(want)} images); rerun it to complete it"
            )
    entries = []
    for d, part in zip(shard_dirs, parts, strict=True):
        for e in part.values():
            if e["panel"]:
                target = Path(out_dir) / e["panel"]
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(d / e["panel"], target)
            entries.append(e)
    entries.sort(key=lambda e: e["index"])
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    return _write_report(Path(out_dir), {**first, "shard": None}, entries)
