"""evaluation / evaluate.py: --protocol all, LPIPS column, --split val294 and the overlap warning."""

import csv
import json
import shutil
import sys
from pathlib import Path

import pytest

from pynet_bokeh import evaluation, image_io, metrics
from pynet_bokeh.data import splits
from pynet_bokeh.data.synthetic import generate_dataset

REPO = Path(__file__).resolve().parents[1]
VAL_STEMS = {"0": "4399", "1": "4400", "2": "4693"}


@pytest.fixture(scope="module")
def ebb_like(tmp_path_factory):
    """An EBB!-layout root whose train/ holds stems 4399, 4400, 4693 (two of them in Val294)."""
    root = tmp_path_factory.mktemp("ebb")
    generate_dataset(root / "gen", n_train=0, n_test=3, size=(128, 192), seed=0)
    for folder, suffix in (("original", ".jpg"), ("original_depth", ".png"), ("bokeh", ".jpg")):
        (root / "train" / folder).mkdir(parents=True)
        for old, new in VAL_STEMS.items():
            shutil.copy(
                root / "gen/test" / folder / (old + suffix),
                root / "train" / folder / (new + suffix),
            )
    return root


@pytest.fixture(scope="module")
def lpips(fixtures_dir):
    d = fixtures_dir / "lpips"
    return metrics.build_lpips("alex", d / "alexnet_seed0.pth", d / "lpips_alex_v0.1.pth")


def test_val294_scores_train_4400_to_4693(ebb_like):
    samples = evaluation.dataset_samples(ebb_like, "val294")
    assert [s.stem for s in samples] == ["4400", "4693"]
    assert all(s.photo.parent.parent.name == "train" for s in samples)
    assert len(evaluation.dataset_samples(ebb_like, "train")) == 3


def test_protocol_all_one_pass_one_table(ebb_like, lpips, tmp_path):
    samples = evaluation.dataset_samples(ebb_like, "val294")
    summary = evaluation.evaluate(
        evaluation.baseline_renderers(),
        samples,
        tmp_path,
        num_panels=0,
        protocol="all",
        border=16,
        crop_size=(64, 96),
        progress=False,
        lpips=lpips,
        notes=evaluation.split_notes("val294"),
    )
    columns = [*metrics.protocol_columns(), "lpips"]
    assert summary["columns"] == columns
    assert summary["settings"]["protocol"] == "all"
    assert summary["settings"]["protocols"] == list(metrics.PROTOCOLS)
    with open(tmp_path / "per_image.csv") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["stem", "method", *columns, "seconds"]
    assert len(rows) == 2 * 2
    # the identity row is the photo itself scored under each protocol
    photo = image_io.read_photo(samples[0].photo)
    target = image_io.read_photo(samples[0].target)
    row = next(r for r in rows if r["stem"] == "4400" and r["method"] == "identity")
    for protocol in ("authors", "dmshn", "ntire2023", "bokehlicious"):
        expected = metrics.image_metrics(photo, target, protocol=protocol)
        assert float(row[f"{protocol}/psnr"]) == pytest.approx(expected["psnr"], rel=1e-5)
    assert float(row["lpips"]) == pytest.approx(
        float(lpips(photo[None], target[None])[0]), rel=1e-4
    )
    text = (tmp_path / "report.md").read_text()
    assert "| method | ebb PSNR (dB) | ebb SSIM | ebb MS-SSIM | aim2020 PSNR (dB) |" in text
    assert "| LPIPS | s / image |" in text
    assert "not held out" in text and "dmshn: Stacked DMSHN" in text


def _run_cli(argv):
    sys.path.insert(0, str(REPO))
    from absl import flags

    import evaluate

    sys.path.remove(str(REPO))
    flag_values = evaluate.define_flags(flags.FlagValues())
    flag_values(["evaluate.py", *argv])
    evaluate.main([], flag_values)


def test_overlap_with_a_training_record_is_named(ebb_like, tmp_path):
    run = tmp_path / "runs" / "pynet"
    splits.write_trained_stems(run / "level_2", ebb_like, ["4399", "4400"])
    samples = evaluation.dataset_samples(ebb_like, "val294")
    weights = run / "level_1" / "final.weights.h5"
    seen = evaluation.training_overlap([None, weights], ebb_like, "val294", samples)
    assert seen == ["4400"]
    assert evaluation.training_overlap([weights], ebb_like, "test", samples) == []
    notes = evaluation.split_notes("val294", seen)
    assert notes[0] == splits.VAL294_NOTE
    assert (
        notes[1].startswith("1 scored image(s) were in the training set") and "(4400)" in notes[1]
    )
    assert evaluation.split_notes("test") == []


@pytest.mark.slow  # builds and runs PyNET (~50 s on a loaded 2-core machine)
def test_cli_warns_when_the_weights_trained_on_the_scored_images(
    ebb_like, tf1_prefix, fixtures_dir, tmp_path, caplog
):
    run = tmp_path / "runs" / "pynet" / "level_1"
    run.mkdir(parents=True)
    for path in tf1_prefix.parent.glob(tf1_prefix.name + ".*"):
        shutil.copy(path, run / path.name)
    splits.write_trained_stems(run, ebb_like, ["4399", "4400", "4693"])
    out = tmp_path / "out"
    _run_cli(
        [
            f"--tf1_checkpoint={run / tf1_prefix.name}",
            f"--dataset_dir={ebb_like}",
            "--split=val294",
            "--limit=1",
            "--protocol=dmshn",
            "--baselines=",
            "--num_panels=0",
            f"--lpips_weights={fixtures_dir / 'lpips' / 'lpips_alex_v0.1.pth'}",
            f"--lpips_trunk={fixtures_dir / 'lpips' / 'alexnet_seed0.pth'}",
            f"--out_dir={out}",
        ]
    )
    assert "1 of the 1 scored images were in the training set" in caplog.text
    summary = json.loads((out / "summary.json").read_text())
    (method,) = summary["methods"].values()
    assert set(method) == {"psnr", "ssim", "lpips", "seconds"}
    assert summary["settings"]["protocol"] == "dmshn"
    text = (out / "report.md").read_text()
    assert "1 scored image(s) were in the training set of the scored weights (4400)" in text
    assert splits.VAL294_NOTE in text


def test_cli_needs_both_lpips_files(tmp_path):
    from pynet_bokeh.errors import UsageError

    with pytest.raises(UsageError, match="both --lpips_weights"):
        _run_cli([f"--out_dir={tmp_path}", f"--photos_dir={tmp_path}", "--lpips_weights=alex.pth"])
