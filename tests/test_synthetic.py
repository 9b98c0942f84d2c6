"""pynet_bokeh.data.synthetic: EBB!-layout scenes, deterministic, resumable, physically rendered."""

import json
import os

import cv2
import numpy as np
import pytest

from pynet_bokeh import image_io
from pynet_bokeh.data import ebb, synthetic
from pynet_bokeh.render import classical

SIZE = (96, 144)
KINDS = ("original", "original_depth", "bokeh", "depth_true", "params")


def _files(root):
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    # Wide apertures so that the blur is large at this small size.
    return synthetic.generate_dataset(
        tmp_path_factory.mktemp("a"), 3, 1, size=SIZE, seed=7, aperture_range=(0.04, 0.06)
    )


def test_layout_and_formats(root):
    assert (root / ".complete").exists()
    for split, n in (("train", 3), ("test", 1)):
        for kind in KINDS:
            assert len(list((root / split / kind).iterdir())) == n, (split, kind)
    pairs = ebb.validate_pairs(ebb.find_pairs(root, "train"))  # the pipeline accepts it
    assert [p.stem for p in pairs] == ["0", "1", "2"]
    assert all(p.photo_size == SIZE and p.params is not None for p in pairs)
    depth = cv2.imread(str(root / "train/original_depth/0.png"), cv2.IMREAD_UNCHANGED)
    assert depth.dtype == np.uint8 and depth.shape == (SIZE[0] // 2, SIZE[1] // 2)
    assert depth.min() == 0 and depth.max() == 255  # min-max normalised, like EBB!
    true = np.load(root / "train/depth_true/0.npy")
    assert true.dtype == np.float32 and true.shape == SIZE
    params = json.loads((root / "train/params/0.json").read_text())
    assert 0.04 <= params["aperture"] <= 0.06
    lo, hi = params["disparity_range"]
    assert params["focus_depth01"] == pytest.approx((params["focus_disparity"] - lo) / (hi - lo))


def test_depth_map_is_near_bright_encoding_of_the_true_disparity(root):
    true = np.load(root / "train/depth_true/1.npy")
    depth = image_io.read_depth(root / "train/original_depth/1.png")
    half = cv2.resize(true, (SIZE[1] // 2, SIZE[0] // 2), interpolation=cv2.INTER_AREA)
    expected = (half - half.min()) / (half.max() - half.min())
    np.testing.assert_allclose(depth, expected, atol=0.5 / 255 + 1e-6)


def test_target_is_sharp_at_the_focus_depth_and_blurred_elsewhere(root):
    for stem in ("0", "1", "2"):
        photo = image_io.read_photo(root / f"train/original/{stem}.jpg")
        bokeh = image_io.read_photo(root / f"train/bokeh/{stem}.jpg")
        true = np.load(root / f"train/depth_true/{stem}.npy")
        params = json.loads((root / f"train/params/{stem}.json").read_text())
        radius = np.abs(
            classical.coc_radius(true, params["focus_disparity"], params["aperture"], SIZE)
        )
        kernel = np.ones((9, 9), np.uint8)
        sharp = cv2.erode((radius < 0.5).astype(np.uint8), kernel) > 0
        blurred = cv2.erode((radius > 2.5).astype(np.uint8), kernel) > 0
        lap_photo = np.abs(cv2.Laplacian(photo.mean(-1), cv2.CV_32F))
        lap_bokeh = np.abs(cv2.Laplacian(bokeh.mean(-1), cv2.CV_32F))
        assert sharp.sum() > 100 and blurred.sum() > 100, stem  # this seed has both
        assert lap_bokeh[sharp].mean() > 0.8 * lap_photo[sharp].mean(), stem
        assert lap_bokeh[blurred].mean() < 0.5 * lap_photo[blurred].mean(), stem


def test_classical_baseline_with_the_recorded_lens_approaches_the_target(root):
    gains = []
    for stem in ("0", "1", "2"):
        photo = image_io.read_photo(root / f"train/original/{stem}.jpg")
        bokeh = image_io.read_photo(root / f"train/bokeh/{stem}.jpg")
        depth = image_io.read_depth(root / f"train/original_depth/{stem}.png")
        params = json.loads((root / f"train/params/{stem}.json").read_text())
        out = classical.render_bokeh_baseline(
            photo, depth, params["focus_depth01"], params["aperture_depth01"]
        )
        gains.append(10 * np.log10(np.mean((photo - bokeh) ** 2) / np.mean((out - bokeh) ** 2)))
    # Same lens from the 8-bit half-size map (hidden background unknown): much closer than the
    # sharp photo is.
    assert np.mean(gains) > 3.0, gains


def test_same_seed_same_bytes_other_seed_other_scenes(root, tmp_path):
    again = synthetic.generate_dataset(
        tmp_path / "b", 3, 1, size=SIZE, seed=7, aperture_range=(0.04, 0.06)
    )
    assert _files(again) == _files(root)
    for rel in _files(root):
        assert (again / rel).read_bytes() == (root / rel).read_bytes(), rel
    other = synthetic.generate_dataset(
        tmp_path / "c", 1, 0, size=SIZE, seed=8, aperture_range=(0.04, 0.06)
    )
    assert (other / "train/original/0.jpg").read_bytes() != (
        root / "train/original/0.jpg"
    ).read_bytes()


def test_interrupted_set_is_resumed_without_rewriting_finished_samples(root, tmp_path):
    out = tmp_path / "r"
    synthetic.generate_dataset(out, 3, 1, size=SIZE, seed=7, aperture_range=(0.04, 0.06))
    # Simulate a run killed in the middle of scene 1: marker and some of its files missing.
    (out / ".complete").unlink()
    (out / "train/params/1.json").unlink()
    (out / "train/bokeh/1.jpg").unlink()
    keep = out / "train/original/0.jpg"
    os.utime(keep, (1, 1))
    synthetic.generate_dataset(out, 3, 1, size=SIZE, seed=7, aperture_range=(0.04, 0.06))
    assert (out / ".complete").exists() and keep.stat().st_mtime == 1  # not rewritten
    for rel in _files(root):
        assert (out / rel).read_bytes() == (root / rel).read_bytes(), rel
    assert not [p for p in out.rglob("*.tmp")]
    with pytest.raises(ValueError, match="made with other parameters"):
        synthetic.generate_dataset(out, 4, 1, size=SIZE, seed=7)


def test_variants_share_the_scene_and_differ_in_lens(tmp_path):
    out = synthetic.generate_dataset(tmp_path, 1, 0, size=SIZE, seed=1, variants=3)
    stems = sorted(p.stem for p in (out / "train/original").iterdir())
    assert stems == ["0_0", "0_1", "0_2"]
    photos = {(out / f"train/original/{s}.jpg").read_bytes() for s in stems}
    depths = {(out / f"train/depth_true/{s}.npy").read_bytes() for s in stems}
    lenses = {
        tuple(
            json.loads((out / f"train/params/{s}.json").read_text())[k]
            for k in ("focus_disparity", "aperture")
        )
        for s in stems
    }
    assert len(photos) == 1 and len(depths) == 1 and len(lenses) == 3


def test_ensure_synthetic_generates_once_and_finishes_a_half_written_set(tmp_path):
    first = synthetic.ensure_synthetic(tmp_path, n_train=2, n_test=1, size=SIZE, seed=0)
    assert first.parent == tmp_path and (first / ".complete").exists()
    assert len(list((first / "train/original").iterdir())) == 2
    (first / ".complete").unlink()
    (first / "test/bokeh/0.jpg").unlink()
    second = synthetic.ensure_synthetic(tmp_path, n_train=2, n_test=1, size=SIZE, seed=0)
    assert second == first and (first / "test/bokeh/0.jpg").exists()
    assert (first / ".complete").exists()


def test_cli(tmp_path, capsys):
    synthetic.main(
        ["--out", str(tmp_path / "cli"), "--train", "1", "--test", "1", "--size", "64x96"]
    )
    assert "synthetic set ready" in capsys.readouterr().out
    photo = image_io.read_photo(tmp_path / "cli/test/original/0.jpg")
    assert photo.shape == (64, 96, 3)
    with pytest.raises(SystemExit) as info:
        synthetic.main(["--out", str(tmp_path / "x"), "--size", "64by96"])
    assert info.value.code == 2
    assert "--size must look like HxW" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        synthetic.main(["--out", str(tmp_path / "y"), "--size", "63x96"])
    assert "size must be two even numbers" in capsys.readouterr().err


def test_cli_aperture_range_reaches_the_params(tmp_path, capsys):
    out = tmp_path / "ap"
    synthetic.main(
        ["--out", str(out), "--train", "1", "--test", "0", "--size", "64x96", "--variants", "2"]
        + ["--aperture_range", "0.05,0.06"]
    )
    config = json.loads((out / synthetic.PARAMS_FILE).read_text())
    assert config["aperture_range"] == [0.05, 0.06]
    for k in range(2):
        params = json.loads((out / f"train/params/0_{k}.json").read_text())
        assert 0.05 <= params["aperture"] <= 0.06
    for bad, message in (("0.05", "must be LOW,HIGH"), ("0.06,0.05", "0 < LOW <= HIGH")):
        with pytest.raises(SystemExit):
            synthetic.main(["--out", str(tmp_path / "z"), "--aperture_range", bad])
        assert message in capsys.readouterr().err
    assert not (tmp_path / "z").exists()
