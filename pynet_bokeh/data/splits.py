"""Named evaluation splits of EBB! and the record of which images a run trained on.

- "val294": EBB! `train/` images 4400..4693 by numeric stem, the 294-row `data/test.csv` of
  Stacked DMSHN, also BRViT's and EBokehNet's "last 294 training images". The authors' released
  PyNET-Bokeh weights were trained on the whole training set, so their Val294 scores are not
  held out.
- Any other name is a folder of the EBB! root (`test`, `train`, ...).

A training run writes `train_stems.json` in its work folder (`write_trained_stems`); evaluation
reads those beside a weights file (`trained_stems_near`) and `overlap` says which scored images
the model saw.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from pynet_bokeh.files import write_text_atomic

VAL294 = range(4400, 4694)
NAMED_SPLITS = {"val294": ("train", VAL294)}
VAL294_NOTE = (
    "val294 = EBB! train/ images 4400..4693 (Stacked DMSHN's data/test.csv; BRViT's and "
    "EBokehNet's last 294 training images). The authors' released PyNET-Bokeh weights were "
    "trained on the whole training set, so their Val294 scores are not held out."
)
TRAINED_STEMS_FILE = "train_stems.json"


def resolve_split(split: str):
    """(folder of the EBB! root, stem filter or None) for a split name."""
    if split in NAMED_SPLITS:
        return NAMED_SPLITS[split]
    return split, None


def select_stems(pairs, stems):
    """The pairs whose stem is a number in `stems` (all of them when `stems` is None)."""
    if stems is None:
        return list(pairs)
    wanted = set(stems)
    return [p for p in pairs if p.stem.isdigit() and int(p.stem) in wanted]


def write_trained_stems(work_dir, dataset_dir, stems, split="train"):
    """Records in `work_dir/train_stems.json` which images of `dataset_dir/split` a run saw."""
    record = {
        "dataset_dir": os.path.abspath(os.fspath(dataset_dir)),
        "split": split,
        "count": len(stems),
        "stems": sorted(stems, key=lambda s: (not s.isdigit(), int(s) if s.isdigit() else 0, s)),
    }
    path = Path(work_dir) / TRAINED_STEMS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_text_atomic(path, json.dumps(record, indent=1) + "\n")


def _read(path):
    try:
        record = json.loads(Path(path).read_text())
        return record["dataset_dir"], record["split"], set(map(str, record["stems"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def trained_stems_near(weights_path):
    """The training records that apply to a weights file or checkpoint prefix.

    Looks in its folder and, as PyNET levels / multi-stage models start from the previous
    stage's weights, in the sibling run folders (`<model_dir>/*/train_stems.json`). Returns a
    list of (record path, dataset_dir, split, stems); unreadable records are skipped.
    """
    if not weights_path:
        return []
    path = Path(weights_path)
    folder = path if path.is_dir() else path.parent
    candidates = [folder / TRAINED_STEMS_FILE]
    if folder.parent.is_dir():
        candidates += sorted(folder.parent.glob(f"*/{TRAINED_STEMS_FILE}"))
    found, seen = [], set()
    for candidate in candidates:
        key = candidate.resolve()
        if key in seen or not candidate.is_file():
            continue
        seen.add(key)
        record = _read(candidate)
        if record is not None:
            found.append((candidate, *record))
    return found


def _same_root(a, b):
    a, b = Path(a).resolve(), Path(b).resolve()
    return a == b or a.name == b.name


def overlap(records, dataset_dir, split_folder, stems):
    """Scored stems of `dataset_dir/split_folder` that a training record says were trained on."""
    seen = set()
    for _path, root, split, trained in records:
        if split == split_folder and _same_root(root, dataset_dir):
            seen |= trained & set(stems)
    return sorted(seen, key=lambda s: (not s.isdigit(), int(s) if s.isdigit() else 0, s))
