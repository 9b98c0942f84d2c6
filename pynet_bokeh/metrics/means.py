"""Means of per-image scores over a set of images."""

from __future__ import annotations

import math

import numpy as np

from pynet_bokeh.metrics.tf_metrics import METRICS


def mean_metrics(rows, metrics=METRICS) -> dict:
    """Mean of each metric over per-image dicts (inf if a PSNR is inf: an identical pair)."""
    rows = list(rows)
    out = {"count": len(rows)}
    for name in metrics:
        values = [r[name] for r in rows if r.get(name) is not None]
        out[name] = float(np.mean(values)) if values else math.nan
    return out
