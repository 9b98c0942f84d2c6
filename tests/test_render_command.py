"""`pynet-bokeh render` for every method: outputs of each photo's size, the controls, the
refusals, and one error line for a bad path."""

import subprocess
import sys

import numpy as np
import pytest

from pynet_bokeh import image_io
from pynet_bokeh.cli import main

SIZES = {"wide": (64, 96), "odd": (70, 110)}  # 110/2 = 55: PyNET pads to 64 and crops back


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """Textured photos with a near square (disparity 1) on a far background (0.2)."""
    root = tmp_path_factory.mktemp("render")
    (root / "original").mkdir()
    (root / "original_depth").mkdir()
    rng = np.random.default_rng(0)
    for stem, (h, w) in SIZES.items():
        image_io.write_image(root / "original" / f"{stem}.png", rng.random((h, w, 3)))
        depth = np.full((h // 2, w // 2), 51, np.uint8)
        depth[h // 8 : h // 4 + 4, w // 8 : w // 4 + 4] = 255
        image_io.write_image(root / "original_depth" / f"{stem}.png", depth)
    return root


@pytest.fixture(scope="module")
def deeplens_prefix(fixtures_dir, tmp_path_factory):
    prefix = tmp_path_factory.mktemp("deeplens") / "model"
    script = fixtures_dir / "deeplens" / "make_checkpoint.py"
    subprocess.run([sys.executable, str(script), str(prefix), "--seed", "0"], check=True)
    return prefix


def _read(folder):
    return {p.stem: image_io.read_photo(p) for p in sorted(folder.glob("*.png"))}


def _laplacian_energy(img):
    g = img.mean(axis=2)
    lap = 4 * g[1:-1, 1:-1] - g[:-2, 1:-1] - g[2:, 1:-1] - g[1:-1, :-2] - g[1:-1, 2:]
    return float((lap**2).mean())


def test_classical_focus_and_blur(photos, tmp_path):
    out = tmp_path / "classical"
    argv = ["render", str(photos / "original"), "--method", "classical", "--output_dir", str(out)]
    assert main([*argv, "--focus", "40,28", "--blur", "8"]) == 0  # focus on the near square
    outs = _read(out)
    for stem, (h, w) in SIZES.items():
        photo = image_io.read_photo(photos / "original" / f"{stem}.png")
        assert outs[stem].shape == (h, w, 3)
        # the square, in photo pixels, 4 px inside its edges; the background well away from it
        near = np.s_[
            2 * (h // 8) + 4 : 2 * (h // 4 + 4) - 4, 2 * (w // 8) + 4 : 2 * (w // 4 + 4) - 4
        ]
        far = np.s_[2 * (h // 4 + 4) + 8 :, 2 * (w // 4 + 4) + 8 :]
        np.testing.assert_allclose(outs[stem][near], photo[near], atol=2 / 255)
        assert _laplacian_energy(outs[stem][far]) < 0.2 * _laplacian_energy(photo[far])
    # blur 0: the photo itself, to the 8-bit step
    assert main([*argv, "--blur", "0", "--overwrite"]) == 0
    for stem, img in _read(out).items():
        np.testing.assert_array_equal(img, image_io.read_photo(photos / "original" / f"{stem}.png"))


def test_classical_tf_engine_matches_numpy(photos, tmp_path):
    argv = ["render", str(photos / "original"), "--method", "classical", "--blur", "8"]
    assert main([*argv, "--output_dir", str(tmp_path / "np")]) == 0
    assert main([*argv, "--engine", "tf", "--output_dir", str(tmp_path / "tf")]) == 0
    reference, port = _read(tmp_path / "np"), _read(tmp_path / "tf")
    assert sorted(port) == sorted(SIZES)
    for stem, img in port.items():
        assert img.shape == reference[stem].shape
        mse = np.mean((img.astype(np.float64) - reference[stem]) ** 2)
        assert 10 * np.log10(1 / mse) > 40, stem


def test_pynet_equals_render_bokeh(photos, tf1_prefix, tmp_path):
    from pynet_bokeh import build_pynet, load_tf1_checkpoint
    from pynet_bokeh.inference import render_bokeh

    out = tmp_path / "pynet"
    argv = ["render", str(photos / "original"), "--method", "pynet", "--output_dir", str(out)]
    assert main([*argv, "--weights", str(tf1_prefix)]) == 0
    model = load_tf1_checkpoint(build_pynet(), tf1_prefix)
    for stem, img in _read(out).items():
        photo = image_io.read_photo(photos / "original" / f"{stem}.png")
        depth = image_io.read_depth(photos / "original_depth" / f"{stem}.png")
        assert img.shape == photo.shape
        np.testing.assert_allclose(img, render_bokeh(model, photo, depth), atol=2 / 255)


def test_deeplens_with_focus_and_blur(photos, deeplens_prefix, tmp_path):
    out = tmp_path / "deeplens"
    argv = ["render", str(photos / "original"), "--method", "deeplens", "--output_dir", str(out)]
    assert main([*argv, "--weights", str(deeplens_prefix), "--focus", "5,5", "--blur", "3"]) == 0
    outs = _read(out)
    for stem, (h, w) in SIZES.items():
        assert outs[stem].shape == (h, w, 3)
        assert np.isfinite(outs[stem]).all()


@pytest.mark.parametrize(
    "extra, match",
    [
        (["--method", "pynet", "--focus", "3,3"], "--method pynet takes no --focus"),
        (["--method", "bradcn", "--blur", "3"], "--method bradcn takes no --blur"),
        (["--method", "identity", "--level", "2"], "--level does not apply to --method identity"),
        (["--method", "classical", "--blur", "-1"], "--blur -1.0: K is a radius in pixels"),
        (["--method", "classical", "--focus", "500,1"], "--focus 500,1 lies outside the photo"),
        (
            ["--method", "identity", "--engine", "tf"],
            "--engine does not apply to --method identity",
        ),
    ],
)
def test_controls_a_method_cannot_take_are_refused(
    photos, tf1_prefix, tmp_path, capsys, extra, match
):
    weights = ["--weights", str(tf1_prefix)] if "pynet" in extra else []
    argv = ["render", str(photos / "original" / "wide.png"), "--output_dir", str(tmp_path / "o")]
    rc = main([*argv, *extra, *weights])
    captured = capsys.readouterr()
    text = captured.err + captured.out
    assert rc != 0 and match in text and "Traceback" not in text
    assert not list(tmp_path.glob("o/*.png"))  # nothing written


def test_missing_weights_path_is_one_line(photos, tmp_path):
    missing = tmp_path / "nope.weights.h5"
    res = subprocess.run(
        [sys.executable, "-m", "pynet_bokeh.cli", "render", str(photos / "original"),
         "--method", "pynet", "--weights", str(missing), "--output_dir", str(tmp_path / "o")],
        capture_output=True, text=True,
    )  # fmt: skip
    assert res.returncode == 2
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1 and str(missing) in errors[0] and "Traceback" not in res.stderr
