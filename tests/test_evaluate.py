"""evaluation / evaluate.py: a small synthetic EBB! set end to end, and the folder mode."""

import csv
import json
import math
import subprocess
import sys

import imageio.v3 as iio
import numpy as np
import pytest

from pynet_bokeh import build_pynet, evaluation, load_tf1_checkpoint
from pynet_bokeh.data.synthetic import generate_dataset

REPO = __import__("pathlib").Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def synthetic_set(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    generate_dataset(root, n_train=0, n_test=3, size=(128, 192), seed=0)
    return root


@pytest.fixture(scope="module")
def pynet(tf1_prefix):
    return load_tf1_checkpoint(build_pynet(), tf1_prefix)


@pytest.fixture(scope="module")
def evaluated(synthetic_set, pynet, tmp_path_factory):
    out = tmp_path_factory.mktemp("eval")
    renderers = {
        "pynet": evaluation.model_renderer(pynet, 1),
        "pynet L2": evaluation.model_renderer(pynet, 2),
        **evaluation.baseline_renderers(),
    }
    samples = evaluation.dataset_samples(synthetic_set, "test")
    summary = evaluation.evaluate(
        renderers, samples, out, num_panels=2, border=16, progress=False, source="synthetic"
    )
    return out, summary, samples


def test_dataset_samples_pair_by_stem(synthetic_set):
    samples = evaluation.dataset_samples(synthetic_set, "test")
    assert [s.stem for s in samples] == ["0", "1", "2"]
    for s in samples:
        assert s.photo.parent.name == "original" and s.depth.parent.name == "original_depth"
        assert s.target.parent.name == "bokeh" and s.target.stem == s.stem
    assert len(evaluation.dataset_samples(synthetic_set, "test", limit=2)) == 2


def test_csv_has_a_row_per_image_and_method(evaluated):
    out, summary, samples = evaluated
    with open(out / "per_image.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 3 * 4
    assert list(rows[0]) == [
        "stem",
        "method",
        "psnr",
        "ssim",
        "ms_ssim",
        "ms_ssim_scales",
        "seconds",
    ]
    assert {r["method"] for r in rows} == {"pynet", "pynet L2", "identity", "classical"}
    # 128 x 192 minus a 16-px border: 96 x 160 px, 4 MS-SSIM scales fit (96 >= 11 * 2**3)
    assert {r["ms_ssim_scales"] for r in rows} == {"4"}
    for r in rows:
        assert 0 < float(r["ssim"]) <= 1 and float(r["seconds"]) >= 0


def test_identity_row_is_the_photo_scored_against_the_target(evaluated, synthetic_set):
    out, summary, samples = evaluated
    from pynet_bokeh import image_io, metrics

    s = samples[0]
    expected = metrics.image_metrics(
        image_io.read_photo(s.photo), image_io.read_photo(s.target), border=16
    )
    with open(out / "per_image.csv") as f:
        row = next(
            r for r in csv.DictReader(f) if r["stem"] == s.stem and r["method"] == "identity"
        )
    assert float(row["psnr"]) == pytest.approx(expected["psnr"], rel=1e-5)
    assert float(row["ssim"]) == pytest.approx(expected["ssim"], rel=1e-5)


def test_summary_json_holds_the_means(evaluated):
    out, summary, _ = evaluated
    data = json.loads((out / "summary.json").read_text())
    assert data["count"] == 3 and data["has_targets"] and data["failures"] == []
    assert data["settings"] == {"protocol": "ebb", "border": 16}
    with open(out / "per_image.csv") as f:
        rows = list(csv.DictReader(f))
    for method, m in data["methods"].items():
        values = [float(r["psnr"]) for r in rows if r["method"] == method]
        assert m["psnr"] == pytest.approx(np.mean(values), abs=1e-4)
    assert all(math.isfinite(m["psnr"]) and m["seconds"] > 0 for m in data["methods"].values())


def test_report_and_panels(evaluated):
    out, summary, _ = evaluated
    text = (out / "report.md").read_text()
    assert "| method | PSNR (dB) | SSIM | MS-SSIM | s / image |" in text
    for name in ("pynet", "identity", "classical"):
        assert f"| {name} |" in text
    best = max(summary["methods"].values(), key=lambda m: m["psnr"])["psnr"]
    assert f"**{best:.2f}**" in text
    assert summary["files"]["panels"] == ["panels/0.png", "panels/1.png"]
    assert "![0](panels/0.png)" in text
    assert not (out / "panels" / "2.png").exists()
    panel = iio.imread(out / "panels" / "0.png")
    # 4 methods = 4 rows; input | output | target | heat map, tiles 512 px wide at 2:3
    assert panel.shape == (4 * 341, 4 * 512, 3)


def test_model_renderer_runs_the_level_and_resizes_to_the_photo(pynet, synthetic_set):
    """Level 2 through the evaluation renderer equals the network's level-2 output computed
    directly (half-size bicubic input + depth, no padding needed at 64 x 96), resized to the
    photo with antialiased bicubic."""
    import tensorflow as tf

    from pynet_bokeh import image_io

    s = evaluation.dataset_samples(synthetic_set, "test")[0]
    photo, depth = image_io.read_photo(s.photo), image_io.read_depth(s.depth)
    assert photo.shape == (128, 192, 3) and depth.shape == (64, 96)
    out = evaluation.model_renderer(pynet, 2)(photo, depth)
    small = tf.image.resize(photo, (64, 96), method="bicubic", antialias=True)
    x = tf.concat([tf.clip_by_value(small, 0.0, 1.0), depth[..., None]], axis=-1)[None]
    level2 = pynet(x, training=False)["level2"][0]
    assert level2.shape == (64, 96, 3)
    expected = tf.image.resize(level2, (128, 192), method="bicubic", antialias=True)
    assert out.shape == photo.shape
    np.testing.assert_allclose(out, np.clip(expected.numpy(), 0, 1), atol=1e-5)


def test_error_heat_map_scale():
    from pynet_bokeh.report import error_heat_map

    target = np.zeros((4, 4, 3), np.float32)
    heat = error_heat_map(target + np.array([0, 0.5, 0], np.float32), target)
    assert heat.shape == (4, 4, 3) and heat.dtype == np.uint8
    zero = error_heat_map(target, target)
    assert zero.max() < 10 and heat.mean() > zero.mean() + 100  # 0.167 mean error is bright


def test_folder_mode_without_targets_writes_outputs(ebb_samples, pynet, tmp_path):
    samples = evaluation.folder_samples(ebb_samples / "images", limit=1)
    assert samples[0].depth.parent.name == "depth_maps" and samples[0].target is None
    summary = evaluation.evaluate(
        {"identity": evaluation.baseline_renderers()["identity"]},
        samples,
        tmp_path,
        num_panels=1,
        save_outputs=True,
        progress=False,
    )
    assert not summary["has_targets"] and "psnr" not in summary["methods"]["identity"]
    photo = iio.imread(samples[0].photo)
    assert np.array_equal(iio.imread(tmp_path / "outputs" / "identity" / "1.png"), photo)
    assert "No targets" in (tmp_path / "report.md").read_text()
    with open(tmp_path / "per_image.csv") as f:
        assert next(csv.reader(f)) == ["stem", "method", "seconds"]
    # input | depth | output
    assert iio.imread(tmp_path / "panels" / "1.png").shape[1] == 3 * 512


def test_bad_inputs_raise_clear_errors(synthetic_set, tmp_path):
    with pytest.raises(FileNotFoundError, match="no photos or depth maps found"):
        evaluation.dataset_samples(synthetic_set, "train")
    (synthetic_set / "test" / "bokeh" / "2.jpg").rename(tmp_path / "2.jpg")
    try:
        with pytest.raises(ValueError, match=r"1 sample\(s\) lack a .* target \(2\)"):
            evaluation.dataset_samples(synthetic_set, "test")
    finally:
        (tmp_path / "2.jpg").rename(synthetic_set / "test" / "bokeh" / "2.jpg")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="--photos_dir .*empty: no JPEG/PNG photos"):
        evaluation.folder_samples(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="--photos_dir .*absent is not a folder"):
        evaluation.folder_samples(tmp_path / "absent")


def test_a_broken_image_is_reported_and_skipped(synthetic_set, tmp_path):
    samples = evaluation.dataset_samples(synthetic_set, "test")
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    samples[1] = evaluation.Sample("1", broken, samples[1].depth, samples[1].target)
    summary = evaluation.evaluate(
        {"identity": evaluation.baseline_renderers()["identity"]},
        samples,
        tmp_path / "out",
        progress=False,
    )
    assert summary["count"] == 2
    assert summary["failures"][0]["stem"] == "1" and "broken.jpg" in summary["failures"][0]["error"]
    assert "## Failures" in (tmp_path / "out" / "report.md").read_text()


def _run_cli(argv):
    """Runs evaluate.py's main in this process (no second TensorFlow start-up)."""
    sys.path.insert(0, str(REPO))
    from absl import flags

    import evaluate

    sys.path.remove(str(REPO))
    flag_values = evaluate.define_flags(flags.FlagValues())
    flag_values(["evaluate.py", *argv])
    evaluate.main([], flag_values)


@pytest.mark.slow  # heavy: the default suite keeps under 15 min on 2 cores
def test_command_line_end_to_end(synthetic_set, tf1_prefix, pynet, tmp_path, capsys):
    from pynet_bokeh.training.checkpointing import save_weights

    out = tmp_path / "cli"
    other = tmp_path / "other.weights.h5"
    original = [w.numpy() for w in pynet.weights]
    for w in pynet.weights:  # other weights: every one scaled by 0.9
        w.assign(w * 0.9)
    save_weights(pynet, other)
    for w, value in zip(pynet.weights, original, strict=True):
        w.assign(value)
    _run_cli(
        [
            f"--tf1_checkpoint={tf1_prefix}",
            f"--compare_weights={other}",
            f"--dataset_dir={synthetic_set}",
            "--split=test",
            "--limit=1",
            "--level=2",
            "--border=16",
            "--baselines=identity",
            f"--out_dir={out}",
        ]
    )
    summary = json.loads((out / "summary.json").read_text())
    names = list(summary["methods"])
    assert names == [
        "pynet L2 (pynet_bokeh_level_0)",
        "pynet L2 (other.weights.h5)",
        "identity",
    ]
    assert summary["settings"]["compare"] == str(other)
    # other weights, other scores; identity scores the photo itself against the target
    assert summary["methods"][names[0]]["psnr"] != summary["methods"][names[1]]["psnr"]
    from pynet_bokeh import image_io, metrics

    s = evaluation.dataset_samples(synthetic_set, "test")[0]
    direct = metrics.image_metrics(
        image_io.read_photo(s.photo), image_io.read_photo(s.target), border=16
    )
    assert summary["methods"]["identity"]["psnr"] == pytest.approx(direct["psnr"], abs=1e-4)
    stdout = capsys.readouterr().out
    assert "1 images ->" in stdout and "PSNR" in stdout


def test_command_line_usage_errors(tmp_path):
    from pynet_bokeh.errors import UsageError

    with pytest.raises(UsageError, match="exactly one of --dataset_dir"):
        _run_cli([f"--out_dir={tmp_path}", "--weights=x.weights.h5"])
    with pytest.raises(UsageError, match="--baselines: unknown"):
        _run_cli(
            [f"--out_dir={tmp_path}", f"--photos_dir={tmp_path}", "--model=classical",
             "--baselines=blur"]
        )  # fmt: skip
    # the script file itself runs as a program (absl app) and reports the flag at fault
    result = subprocess.run(
        [sys.executable, str(REPO / "evaluate.py"), "--weights=x.weights.h5"],
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0 and "--out_dir is required" in result.stderr
