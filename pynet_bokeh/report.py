"""Visual and tabular outputs of an evaluation: panels, error heat maps, CSV, JSON, Markdown.

Everything is written atomically (a temp file, then `os.replace`), so an interrupted run never
leaves a half-written report behind.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import cv2
import numpy as np

from pynet_bokeh import image_io
from pynet_bokeh.files import write_text_atomic

ERROR_SCALE = 0.25  # |error| mapped to the top of the heat map's colour scale
TILE_WIDTH = 512  # panel tiles are downscaled to this width


def error_heat_map(pred, target, scale=ERROR_SCALE):
    """Mean absolute error over channels as an RGB heat map (inferno): 0 black, >= scale yellow."""
    err = np.mean(np.abs(np.clip(pred, 0, 1) - np.clip(target, 0, 1)), axis=-1)
    level = np.round(np.clip(err / scale, 0.0, 1.0) * 255).astype(np.uint8)
    return cv2.cvtColor(cv2.applyColorMap(level, cv2.COLORMAP_INFERNO), cv2.COLOR_BGR2RGB)


def _tile(image, label, width):
    """uint8 RGB tile of `width` px with `label` on a dark band at the top."""
    img = np.asarray(image)
    if img.dtype != np.uint8:
        img = np.round(np.clip(img, 0, 1) * 255).astype(np.uint8)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    h, w = img.shape[:2]
    height = max(1, int(round(h * width / w)))
    img = cv2.resize(img, (width, height), interpolation=cv2.INTER_AREA)
    band = 22
    img[:band] = (img[:band].astype(np.float32) * 0.3).astype(np.uint8)
    cv2.putText(img, label, (6, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
    return img


def panel(rows, width=TILE_WIDTH):
    """Stacks rows of (image, label) tiles into one uint8 RGB image (tiles share one height)."""
    rendered = [
        np.concatenate([_tile(img, label, width) for img, label in row], axis=1) for row in rows
    ]
    full = max(r.shape[1] for r in rendered)
    padded = [np.pad(r, ((0, 0), (0, full - r.shape[1]), (0, 0))) for r in rendered]
    return np.concatenate(padded, axis=0)


def sample_panel(photo, depth, outputs, target=None, width=TILE_WIDTH):
    """One row per method: input | output | target | error heat map (input | depth | output
    when there is no target). `outputs` maps method name -> image at the photo's size."""
    rows = []
    for name, out in outputs.items():
        if target is None:
            rows.append([(photo, "input"), (depth, "depth (near = bright)"), (out, name)])
        else:
            heat = error_heat_map(out, target)
            rows.append(
                [
                    (photo, "input"),
                    (out, name),
                    (target, "target"),
                    (heat, f"|{name} - target|, 0..{ERROR_SCALE:g}"),
                ]
            )
    return panel(rows, width)


def write_panel(path, image):
    return image_io.write_image(path, image)


def write_csv(path, rows, columns):
    """Writes dict rows with `columns` as CSV (floats with 6 significant digits)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _fmt(row.get(k)) for k in columns})
    return write_text_atomic(path, buf.getvalue())


def _fmt(value):
    if isinstance(value, float):
        return "inf" if math.isinf(value) else f"{value:.6g}"
    return "" if value is None else value


def write_json(path, data):
    return write_text_atomic(path, json.dumps(data, indent=2, default=str) + "\n")


def _cell(value, digits):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float) and math.isinf(value):
        return "inf"
    return f"{value:.{digits}f}"


METRIC_LABELS = {"psnr": "PSNR (dB)", "ssim": "SSIM", "ms_ssim": "MS-SSIM", "lpips": "LPIPS"}
PER_IMAGE_LABELS = {"psnr": "PSNR", "ssim": "SSIM", "ms_ssim": "MS-SSIM", "lpips": "LPIPS"}
LOWER_IS_BETTER = ("lpips",)
DEFAULT_COLUMNS = ("psnr", "ssim", "ms_ssim")


def _metric_name(column):
    return column.rsplit("/", 1)[-1]


def column_label(column, labels=METRIC_LABELS):
    """'psnr' -> 'PSNR (dB)'; 'dmshn/ssim' -> 'dmshn SSIM'."""
    protocol, _, name = column.rpartition("/")
    label = labels.get(name, name)
    return f"{protocol} {label}" if protocol else label


def _digits(column):
    return 2 if _metric_name(column) == "psnr" else 4


def _best(methods, columns):
    best = {}
    for key in columns:
        values = [m[key] for m in methods.values() if isinstance(m.get(key), float)]
        values = [v for v in values if not math.isnan(v)]
        pick = min if _metric_name(key) in LOWER_IS_BETTER else max
        best[key] = pick(values) if values else None
    return best


def metric_table(methods, columns):
    """The Markdown table of mean scores: rows = methods, columns = `columns` (best in bold)."""
    best = _best(methods, columns)
    labels = [column_label(c) for c in columns]
    lines = [
        f"| method | {' | '.join(labels)} | s / image |",
        "|---|" + "---:|" * (len(columns) + 1),
    ]
    for name, m in methods.items():
        cells = []
        for key in columns:
            text = _cell(m.get(key), _digits(key))
            cells.append(
                f"**{text}**" if best[key] is not None and m.get(key) == best[key] else text
            )
        lines.append(f"| {name} | {' | '.join(cells)} | {_cell(m.get('seconds'), 2)} |")
    return lines


def markdown_report(summary, panels=(), per_image=()):
    """The Markdown report: settings, the mean-metric table (best marked), panels, per image.

    The table's columns are `summary["columns"]` (default psnr, ssim, ms_ssim; "<protocol>/<metric>"
    keys with several protocols); `summary["notes"]` are listed under it.
    """
    methods = summary["methods"]
    has_targets = summary["has_targets"]
    columns = list(summary.get("columns") or DEFAULT_COLUMNS)
    lines = [f"# Evaluation: {summary['source']}", ""]
    lines += [f"- {k}: {v}" for k, v in summary["settings"].items()]
    lines += [f"- images: {summary['count']}", ""]
    if has_targets:
        lines += metric_table(methods, columns)
        lines += [
            "",
            "Best value per column in bold (LPIPS: lowest). `identity` is the input photo itself "
            "and `classical` the depth-driven defocus renderer (no learning): a model should beat "
            "both.",
        ]
    else:
        lines += [
            "No targets: outputs and panels only.",
            "",
            "| method | s / image |",
            "|---|---:|",
        ]
        lines += [f"| {n} | {_cell(m.get('seconds'), 2)} |" for n, m in methods.items()]
    if summary.get("notes"):
        lines += ["", "## Notes", ""]
        lines += [f"- {note}" for note in summary["notes"]]
    if summary.get("failures"):
        lines += ["", "## Failures", ""]
        lines += [f"- {f['stem']}: {f['error']}" for f in summary["failures"]]
    if panels:
        lines += ["", "## Panels", ""]
        for rel in panels:
            lines += [f"![{Path(rel).stem}]({rel})", ""]
    if per_image and has_targets:
        labels = [column_label(c, PER_IMAGE_LABELS) for c in columns]
        lines += [
            *([""] if lines[-1] else []),
            "## Per image",
            "",
            f"| image | method | {' | '.join(labels)} |",
            "|---|---|" + "---:|" * len(columns),
        ]
        for r in per_image:
            cells = " | ".join(_cell(r.get(c), _digits(c)) for c in columns)
            lines.append(f"| {r['stem']} | {r['method']} | {cells} |")
    return "\n".join(lines) + "\n"
