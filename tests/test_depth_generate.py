"""Tests for depth_tools.generate: EBB!-format depth maps."""

import json
import os
import sys

import imageio.v3 as iio
import numpy as np
import pytest
from absl import flags

from depth_tools import generate
from depth_tools.generate import (
    FLAT_VALUE,
    DepthSource,
    FallbackDepthWarning,
    MissingWeightsError,
    encode_ebb_depth,
    fallback_prior,
    generate_depth_maps,
    get_depth_source,
    plan_jobs,
    to_inverse_depth,
    working_size,
)


def _cli(argv):
    """Run the depth-tools-generate CLI in-process with its own flag set; returns main's code."""
    fv = flags.FlagValues()
    generate.define_flags(fv)
    fv(["depth-tools-generate", *argv])
    return generate.main(["depth-tools-generate"], fv)


def _scene(h=96, w=128):
    """A scene with known depth: a receding ground plane (depth 10 at the top row, 2 at the
    bottom) and a square object at depth 1, lower left. The photo's brightness is inverse depth,
    so ``_oracle`` (a perfect depth net for this scene) can read depth back from the pixels."""
    y = np.linspace(0.0, 1.0, h)[:, None]
    depth = np.broadcast_to(10.0 - 8.0 * y, (h, w)).copy()
    depth[int(0.55 * h) : int(0.8 * h), int(0.1 * w) : int(0.35 * w)] = 1.0
    photo = np.repeat((1.0 / depth)[..., None], 3, axis=2)
    return np.round(photo * 255).astype(np.uint8), depth


def _oracle(calls=None, fail_on_call=None):
    def predict(rgb):
        if calls is not None:
            calls.append(rgb.shape)
            if fail_on_call is not None and len(calls) == fail_on_call:
                raise KeyboardInterrupt  # Ctrl-C in the middle of a run
        return -np.log(np.clip(rgb.mean(axis=-1), 1e-3, None))  # log depth

    return DepthSource(name="oracle", predict=predict, output="log_depth", multiple=16)


def _write_scenes(folder, names):
    folder.mkdir(parents=True, exist_ok=True)
    photo, _ = _scene()
    for name in names:
        iio.imwrite(folder / name, photo)
    return folder


# --- encoding ---------------------------------------------------------------------------------


def test_encoding_of_a_known_map_matches_the_ebb_formula():
    depth = np.array([[1.0, 2.0], [4.0, 8.0]])
    expected = np.array([[255, 109], [36, 0]], np.uint8)  # round(255 (1/d - 1/8) / (1 - 1/8))
    for kind, pred in (
        ("log_depth", np.log(depth)),
        ("depth", depth),
        ("inverse_depth", 1.0 / depth),
    ):
        np.testing.assert_array_equal(encode_ebb_depth(to_inverse_depth(pred, kind)), expected)
    rng = np.random.default_rng(0)
    log_depth = rng.normal(2.0, 1.5, size=(40, 50))
    inv = np.exp(-log_depth)
    formula = np.round(255 * (inv - inv.min()) / (inv.max() - inv.min()))
    np.testing.assert_array_equal(
        encode_ebb_depth(to_inverse_depth(log_depth, "log_depth")), formula
    )


def test_encoding_does_not_overflow_on_extreme_log_depth():
    log_depth = np.linspace(-1000.0, 1000.0, 64).reshape(8, 8)
    with np.errstate(over="raise", divide="raise", invalid="raise"):  # underflow to 0 is fine
        png = encode_ebb_depth(to_inverse_depth(log_depth, "log_depth"))
    assert png[0, 0] == 255 and png.min() == 0 and png.dtype == np.uint8


def test_flat_prediction_gets_the_defined_value():
    assert FLAT_VALUE == 255
    for pred in (np.full((4, 6), 3.7), 3.7 + 1e-12 * np.arange(24).reshape(4, 6)):
        png = encode_ebb_depth(to_inverse_depth(pred, "log_depth"))
        np.testing.assert_array_equal(png, np.full((4, 6), 255, np.uint8))
    with pytest.raises(ValueError, match="NaN or infinite"):
        to_inverse_depth(np.array([[1.0, np.nan]]), "log_depth")


def test_working_size_keeps_aspect_at_the_network_multiple():
    assert working_size(1024, 1536, 512, 16) == (336, 512)
    assert working_size(1024, 1600, 512, 16) == (320, 512)
    assert working_size(1536, 1024, 384, 32) == (384, 256)
    assert working_size(10, 10, 8, 16) == (16, 16)
    with pytest.raises(ValueError, match="--working_size must be positive"):
        working_size(10, 10, 0, 16)


# --- end to end -------------------------------------------------------------------------------


def test_near_is_bright_on_a_scene_with_known_depth(tmp_path):
    folder = _write_scenes(tmp_path / "original", ["scene.png"])
    calls = []
    result = generate_depth_maps(plan_jobs(folder), _oracle(calls), 64, progress=False)
    out = tmp_path / "original_depth" / "scene.png"
    assert result.written == [out] and calls == [(1, 48, 64, 3)]
    png = iio.imread(out)
    assert png.shape == (48, 64) and png.dtype == np.uint8
    _, depth = _scene(48, 64)
    truth = encode_ebb_depth(1.0 / depth)
    assert png[:2].max() <= 2  # farthest (top) rows dark
    assert png[30:36, 8:20].min() >= 250  # the near object, lower left, bright
    assert png[-1, -1] > png[20, -1] > png[2, -1]  # the ground comes nearer towards the bottom
    assert np.abs(png.astype(int) - truth).mean() < 3.0
    assert np.corrcoef(png.ravel(), truth.ravel())[0, 1] > 0.99


@pytest.mark.slow  # heavy: the default suite keeps under 15 min on 2 cores
def test_real_photos_with_fixture_weights_via_cli(ebb_samples, fixtures_dir, tmp_path):
    """All twelve EBB! photos: maps at exactly the authors' size, uint8, spanning 0..255."""
    folder = tmp_path / "photos"
    folder.mkdir()
    photos = sorted((ebb_samples / "images").glob("*.jpg"))
    assert len(photos) == 12
    for photo in photos:  # links, not copies
        os.symlink(photo, folder / photo.name)
    weights = fixtures_dir / "megadepth" / "megadepth_seed0_net_G.pth"
    code = _cli([f"--input={folder}", f"--weights={weights}", "--working_size=64"])
    assert code == 0
    for photo in photos:
        png = iio.imread(folder / "depth_maps" / f"{photo.stem}.png")
        authors = iio.imread(ebb_samples / "depth_maps" / f"{photo.stem}.png")
        h, w = iio.improps(photo).shape[:2]
        assert png.shape == authors.shape == (h // 2, w // 2), photo.name
        assert png.dtype == np.uint8
        assert png.min() == 0 and png.max() == 255, photo.name
    assert sorted(p.name for p in (folder / "depth_maps").iterdir()) == sorted(
        f"{p.stem}.png" for p in photos
    )


def test_interrupted_run_resumes(tmp_path):
    folder = _write_scenes(tmp_path / "original", ["a.png", "b.png", "c.png"])
    out_dir = tmp_path / "original_depth"
    jobs = plan_jobs(folder)
    calls = []
    with pytest.raises(KeyboardInterrupt):  # interrupted while computing the second map
        generate_depth_maps(jobs, _oracle(calls, fail_on_call=2), 64, batch_size=1, progress=False)
    assert sorted(p.name for p in out_dir.iterdir()) == ["a.png"]  # nothing half written
    first_mtime = (out_dir / "a.png").stat().st_mtime_ns
    # What a hard kill can leave behind: a partial temp file, and an empty map from a tool
    # that does not write atomically.
    (out_dir / ".tmp-b.png.x1y2.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    (out_dir / "c.png").write_bytes(b"")
    result = generate_depth_maps(jobs, _oracle(), 64, batch_size=1, progress=False)
    assert result.skipped == [out_dir / "a.png"]
    assert result.written == [out_dir / "b.png", out_dir / "c.png"]
    assert (out_dir / "a.png").stat().st_mtime_ns == first_mtime
    for name in ("a.png", "b.png", "c.png"):
        png = iio.imread(out_dir / name)
        assert png.shape == (48, 64) and png.min() == 0 and png.max() == 255
    again = generate_depth_maps(jobs, _oracle(), 64, overwrite=True, progress=False)
    assert len(again.written) == 3 and not again.skipped


def test_without_weights_refuses_unless_fallback(tmp_path):
    folder = _write_scenes(tmp_path / "photos", ["p.png"])
    with pytest.raises(SystemExit, match="--weights PATH.*--fallback"):
        _cli([f"--input={folder}"])
    with pytest.raises(SystemExit, match="nope.pth: MegaDepth weights not found"):
        _cli([f"--input={folder}", "--fallback", f"--weights={tmp_path / 'nope.pth'}"])
    assert not (folder / "depth_maps").exists()
    with pytest.raises(MissingWeightsError, match="best_generalization_net_G.pth"):
        get_depth_source("megadepth", None)


def test_fallback_warns_and_leaves_a_note_then_weights_replace_it(tmp_path):
    folder = _write_scenes(tmp_path / "photos", ["p.png"])
    with pytest.warns(FallbackDepthWarning, match="GEOMETRIC PRIOR.*NOT a\ndepth estimate"):
        assert _cli([f"--input={folder}", "--fallback"]) == 0
    out = folder / "depth_maps" / "p.png"
    note = json.loads((folder / "depth_maps" / "p.fallback.json").read_text())
    assert note["method"] == "geometric-prior" and "NOT a depth estimate" in note["note"]
    png = iio.imread(out)
    np.testing.assert_array_equal(png, encode_ebb_depth(fallback_prior(48, 64)))
    assert png[0, 0] == png[0, -1] == 0  # top corners: far
    assert png[-1, 32] > png[0, 32] and png[30, 32] > png[30, 0]  # bottom near, subject centred
    # A later run with a depth network redoes the fallback map and drops its note.
    result = generate_depth_maps(plan_jobs(folder), _oracle(), 64, progress=False)
    assert result.written == [out] and not (folder / "depth_maps" / "p.fallback.json").exists()


def test_data_set_root_fills_every_split_and_bad_photos_do_not_stop_the_run(tmp_path):
    _write_scenes(tmp_path / "ebb" / "train" / "original", ["1.png", "2.png"])
    _write_scenes(tmp_path / "ebb" / "test" / "original", ["3.png"])
    (tmp_path / "ebb" / "test" / "original" / "4.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    jobs = plan_jobs(tmp_path / "ebb")
    assert [(p.name, o.relative_to(tmp_path / "ebb").as_posix()) for p, o in jobs] == [
        ("3.png", "test/original_depth/3.png"),
        ("4.jpg", "test/original_depth/4.png"),
        ("1.png", "train/original_depth/1.png"),
        ("2.png", "train/original_depth/2.png"),
    ]
    result = generate_depth_maps(jobs, _oracle(), 64, batch_size=4, progress=False)
    assert len(result.written) == 3
    assert [p.name for p, _ in result.failed] == ["4.jpg"] and "4.jpg" in result.failed[0][1]
    with pytest.raises(ValueError, match="data set root.*leave out --output"):
        plan_jobs(tmp_path / "ebb", tmp_path / "out")


def test_bad_inputs_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="--input .*missing: no such file"):
        plan_jobs(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no JPEG/PNG photos found"):
        plan_jobs(tmp_path / "empty")
    folder = _write_scenes(tmp_path / "dup", ["x.png", "x.jpg"])
    with pytest.raises(ValueError, match="would both write .*x.png"):
        plan_jobs(folder)
    folder = _write_scenes(tmp_path / "same", ["y.png"])
    with pytest.raises(ValueError, match="would replace a photo"):
        plan_jobs(folder, folder)
    with pytest.raises(ValueError, match="unknown depth source; available: .*'megadepth'"):
        get_depth_source("no-such-net")
    jobs = plan_jobs(folder)
    with pytest.raises(ValueError, match="--working_size must be positive, got 0"):
        generate_depth_maps(jobs, _oracle(), 0, progress=False)
    with pytest.raises(ValueError, match="--batch_size must be at least 1"):
        generate_depth_maps(jobs, _oracle(), 64, batch_size=0, progress=False)
    assert not (folder / "depth_maps").exists()


def test_plugin_module_registers_a_source(tmp_path, monkeypatch):
    (tmp_path / "my_depth_plugin.py").write_text(
        "import numpy as np\n"
        "from depth_tools.generate import DepthSource, register_depth_source\n"
        "@register_depth_source('plugin-net')\n"
        "def make(weights):\n"
        "    return DepthSource('plugin-net', lambda x: x[..., 0], 'inverse_depth', 32)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(generate, "PLUGIN_MODULES", ("my_depth_plugin", "no_such_plugin"))
    monkeypatch.setattr(generate, "DEPTH_SOURCES", dict(generate.DEPTH_SOURCES))
    source = get_depth_source("plugin-net")
    assert source.multiple == 32 and source.larger_is_nearer
    sys.modules.pop("my_depth_plugin", None)


def test_shards_cover_the_photos_once_and_resume(tmp_path, capsys):
    folder = _write_scenes(tmp_path / "original", [f"{i}.png" for i in range(5)])
    out_dir = tmp_path / "original_depth"
    written = []
    for shard in ("0/2", "1/2"):
        before = set(os.listdir(out_dir)) if out_dir.exists() else set()
        with pytest.warns(FallbackDepthWarning):
            assert _cli([f"--input={folder}", "--fallback", f"--shard={shard}"]) == 0
        written.append({n for n in set(os.listdir(out_dir)) - before if n.endswith(".png")})
    assert written == [{"0.png", "2.png", "4.png"}, {"1.png", "3.png"}]
    out = capsys.readouterr().out
    assert "shard 0/2: 3 of 5 photos" in out and "shard 1/2: 2 of 5 photos" in out
    # a rerun of a finished shard skips its maps
    (out_dir / "3.png").unlink()
    with pytest.warns(FallbackDepthWarning):
        assert _cli([f"--input={folder}", "--fallback", "--shard=1/2"]) == 0
    assert "1 depth map(s) written, 1 skipped" in capsys.readouterr().out
    for bad, match in (("2/2", "0 <= I < N"), ("1-2", "must look like I/N")):
        with pytest.raises(SystemExit, match=f"--shard.*{match}"):
            _cli([f"--input={folder}", "--fallback", f"--shard={bad}"])
