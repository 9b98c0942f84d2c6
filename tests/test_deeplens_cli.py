"""`pynet-bokeh-deeplens` in process: outputs, focus/aperture flags, input checks.

The checkpoint is written by `save_deeplens_checkpoint` from a model with `init_layered_blur`
weights (known answer: aperture 0 is the photo, the plane off focus blurs), with depth maps given
by --depth_dir; one run without --depth_dir exercises the depth network (random weights).
"""

import re

import numpy as np
import pytest
from deeplens_weights import init_layered_blur, save_deeplens_checkpoint

from pynet_bokeh.cli import deeplens as deeplens_cli
from pynet_bokeh.image_io import read_photo, write_image
from pynet_bokeh.models.deeplens import build_deeplens


def run_cli(*argv):
    return deeplens_cli.main([str(a) for a in argv])


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    prefix = tmp_path_factory.mktemp("ckpt") / "model"
    return save_deeplens_checkpoint(init_layered_blur(build_deeplens()), prefix)


@pytest.fixture
def scene(tmp_path):
    rng = np.random.default_rng(0)
    photo = rng.integers(0, 256, (40, 96, 3), dtype=np.uint8)
    depth = np.full((40, 96), 153, np.uint8)  # far: 0.6
    depth[:, :48] = 255  # near: 1.0 (left half)
    (tmp_path / "photos").mkdir()
    (tmp_path / "depth").mkdir()
    write_image(tmp_path / "photos" / "scene.png", photo)
    write_image(tmp_path / "depth" / "scene.png", depth)
    return tmp_path


def energy(img):
    return float((np.diff(img, axis=0) ** 2).mean() + (np.diff(img, axis=1) ** 2).mean())


def test_aperture_sequence_beside_the_photo(checkpoint, scene):
    photo_path = scene / "photos" / "scene.png"
    before = photo_path.read_bytes()
    rc = run_cli(
        "--checkpoint", checkpoint, "--depth_dir", scene / "depth", "--focus", "10,20",
        "--aperture", 0, "--aperture", 0.2, "--aperture", 1, photo_path,
    )  # fmt: skip
    assert rc == 0
    names = sorted(p.name for p in (scene / "photos").iterdir())
    assert names == [
        "scene.png",
        "scene_deeplens_a0.00.png",
        "scene_deeplens_a0.20.png",
        "scene_deeplens_a1.00.png",
    ]
    assert photo_path.read_bytes() == before
    photo = read_photo(photo_path)
    outs = [
        read_photo(scene / "photos" / f"scene_deeplens_a{a}.png") for a in ("0.00", "0.20", "1.00")
    ]
    np.testing.assert_array_equal(outs[0], photo)  # aperture 0: the photo, to the 8-bit step
    near, far = np.s_[4:-4, 4:44], np.s_[4:-4, 52:-4]
    for out in outs:
        np.testing.assert_array_equal(out[near], photo[near])  # focused at (10, 20): near
    energies = [energy(o[far]) for o in outs]
    assert energies[0] > energies[1] > energies[2]


def test_focus_depth_and_output_dir(checkpoint, scene):
    out_dir = scene / "out"
    rc = run_cli(
        "--checkpoint", checkpoint, "--depth_dir", scene / "depth", "--focus_depth", 0.6,
        "--aperture", 1, "--output_dir", out_dir, "--format", "jpg", scene / "photos" / "scene.png",
    )  # fmt: skip
    assert rc == 0
    assert sorted(p.name for p in out_dir.iterdir()) == [
        "scene_deeplens_a1.00.jpg",
    ]
    out = read_photo(out_dir / "scene_deeplens_a1.00.jpg")
    photo = read_photo(scene / "photos" / "scene.png")
    near, far = np.s_[4:-4, 4:44], np.s_[4:-4, 52:-4]
    # near now out of focus, far in focus (JPEG smooths random texture, so compare the two)
    assert energy(out[near]) < 0.3 * energy(photo[near])
    assert energy(out[far]) > 3 * energy(out[near])


def test_depth_network_path(checkpoint, scene):
    rc = run_cli(
        "--checkpoint", checkpoint, "--output_dir", scene / "o", scene / "photos" / "scene.png"
    )
    assert rc == 0
    out = read_photo(scene / "o" / "scene_deeplens_a0.50.png")
    assert out.shape == (40, 96, 3)


@pytest.mark.parametrize(
    "argv, match",
    [
        (["--focus", "1,2", "--focus_depth", "0.5"], "either --focus X,Y or --focus_depth"),
        (["--focus", "middle"], "--focus must be X,Y"),
        (["--aperture", "1.5"], r"--aperture 1.5: DeepLens' aperture lies in \[0, 1\]"),
        (["--focus_depth", "2"], r"--focus_disparity 2.0: the depth map's values run from 0"),
    ],
)
def test_flag_errors_are_one_line(checkpoint, scene, capsys, argv, match):
    assert run_cli("--checkpoint", checkpoint, *argv, scene / "photos" / "scene.png") == 2
    err = capsys.readouterr().err
    assert re.search("error: .*" + match, err) and "Traceback" not in err
    assert "is an alias of `pynet-bokeh render --method deeplens`" in err


def test_argument_errors(checkpoint, scene, capsys):
    with pytest.raises(SystemExit):
        run_cli(scene / "photos" / "scene.png")  # no --checkpoint: argparse names it
    assert "--checkpoint" in capsys.readouterr().err
    assert run_cli("--checkpoint", checkpoint, "nope.jpg") == 2
    assert "Input nope.jpg does not exist" in capsys.readouterr().err


def test_an_input_named_like_an_output_is_never_overwritten(checkpoint, scene, capsys):
    clash = scene / "photos" / "scene_deeplens_a0.50.png"
    write_image(clash, np.zeros((8, 8, 3), np.uint8))
    before = clash.read_bytes()
    assert run_cli("--checkpoint", checkpoint, scene / "photos" / "scene.png", clash) == 2
    assert "would overwrite an input" in capsys.readouterr().err
    assert clash.read_bytes() == before


def test_runtime_errors_are_named(checkpoint, scene, capsys):
    assert run_cli("--checkpoint", scene / "missing", scene / "photos" / "scene.png") == 2
    assert "DeepLens checkpoint not found" in capsys.readouterr().err
    rc = run_cli("--checkpoint", checkpoint, "--focus", "500,2", scene / "photos" / "scene.png")
    assert rc == 1 and "--focus 500,2 lies outside the photo" in capsys.readouterr().out
