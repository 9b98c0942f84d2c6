"""Issue 11: inputs a hostile or careless user gives (CMYK JPEGs, wrong-shaped depth maps,
unwritable folders, stale temporaries, bad flags). Each asserts the message names the file or
flag and that no input changed."""

import hashlib
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pynet_bokeh import image_io

# Ink blocks (C, M, Y, K) and the RGB they are: (255 - C)(255 - K) / 255 per channel.
INKS = {
    "red": ([0, 255, 255, 0], [255, 0, 0]),
    "cyan": ([255, 0, 0, 0], [0, 255, 255]),
    "gray": ([0, 0, 0, 128], [127, 127, 127]),
    "white": ([0, 0, 0, 0], [255, 255, 255]),
}


def checksums(*paths):
    """sha256 of every file under `paths` (files or folders), by path."""
    out = {}
    for root in map(Path, paths):
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for f in files:
            out[str(f)] = hashlib.sha256(f.read_bytes()).hexdigest()
    return out


def _ink_image():
    inks = np.zeros((32, 16 * len(INKS), 4), np.uint8)
    for i, (ink, _) in enumerate(INKS.values()):
        inks[:, 16 * i : 16 * (i + 1)] = ink
    return inks


def _strip_app14(data):
    """The JPEG without its Adobe APP14 segment (so decoders read plain, non-inverted CMYK)."""
    out, i = bytearray(data[:2]), 2
    while data[i] == 0xFF and data[i + 1] != 0xDA:
        (length,) = struct.unpack(">H", data[i + 2 : i + 4])
        if data[i + 1] != 0xEE:
            out += data[i : i + 2 + length]
        i += 2 + length
    return bytes(out + data[i:])


def make_cmyk_jpeg(path, adobe=True):
    """A CMYK JPEG of the INKS blocks, by Pillow's encoder: Adobe-inverted (what Pillow and
    Photoshop write) or, without the Adobe marker, plain CMYK."""
    inks = _ink_image()
    if adobe:
        Image.fromarray(inks, "CMYK").save(path, quality=95)
    else:
        # Pillow stores 255 - ink under an Adobe marker; without the marker, those bytes are
        # read as the inks themselves: so encode 255 - ink and drop the marker.
        Image.fromarray(255 - inks, "CMYK").save(path, quality=95)
        data = Path(path).read_bytes()
        Path(path).write_bytes(_strip_app14(data))
        assert b"Adobe" not in Path(path).read_bytes()
    return path


def test_cmyk_jpeg_is_converted_to_true_colours(tmp_path):
    path = make_cmyk_jpeg(tmp_path / "cmyk.jpg")
    assert Image.open(path).mode == "CMYK"
    before = checksums(path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        photo = image_io.read_photo(path)
    messages = [str(w.message) for w in caught]
    assert messages == [f"{path}: CMYK JPEG converted to RGB."]
    assert photo.shape == (32, 64, 3) and photo.dtype == np.float32
    for i, (name, (_, rgb)) in enumerate(INKS.items()):
        block = photo[8:24, 16 * i + 4 : 16 * i + 12] * 255
        np.testing.assert_allclose(block.mean(axis=(0, 1)), rgb, atol=4, err_msg=name)
    assert checksums(path) == before


def test_cmyk_jpeg_without_adobe_marker_is_refused_naming_it(tmp_path):
    """Plain or inverted inks cannot be told apart without the marker: never guess."""
    path = make_cmyk_jpeg(tmp_path / "plain.jpg", adobe=False)
    before = checksums(path)
    with pytest.raises(image_io.ImageFileError, match=r"plain\.jpg: CMYK JPEG without an Adobe"):
        image_io.read_photo(path)
    assert checksums(path) == before


def test_cmyk_jpeg_as_depth_map_is_refused_naming_it(tmp_path):
    path = make_cmyk_jpeg(tmp_path / "depth.jpg")
    with (
        pytest.warns(UserWarning),
        pytest.raises(image_io.ImageFileError, match=r"depth\.jpg.*single-channel"),
    ):
        image_io.read_depth(path)


# --- item 4: unwritable output folders, for a process that is not root -----------------------

REPO = Path(__file__).resolve().parents[1]
# Capabilities that let root ignore file permissions (linux/capability.h).
CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER = 1, 2, 3
PR_CAPBSET_DROP = 24


def _as_unprivileged():
    """In the child before exec: as root, drop from the bounding set the capabilities that
    bypass permission bits; exec then gives a root process that obeys them like any user
    (setuid to nobody would not do: the interpreter may live under root-only /root)."""
    if os.geteuid() != 0:
        return
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER):
        if libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def run_unprivileged(args, home, timeout=300):
    """Runs `args` (python ARGS...) unable to bypass file permissions (see _as_unprivileged)."""
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(home),
        "PYTHONPATH": str(REPO),
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "PYTHONUNBUFFERED": "1",
    }
    return subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=home,
        preexec_fn=_as_unprivileged,
    )


@pytest.fixture
def open_dir():
    """A folder every user can enter (pytest's tmp_path is root-only)."""
    path = Path(tempfile.mkdtemp(prefix="pynet-hostile-"))
    path.chmod(0o777)
    yield path
    for p in [path, *path.rglob("*")]:
        if p.is_dir():
            p.chmod(0o777)
    shutil.rmtree(path)


def _check_unprivileged(folder):
    """The child really cannot write `folder` (else the test proves nothing); skips only where
    the capabilities cannot be dropped (a container without CAP_SETPCAP)."""
    try:
        probe = run_unprivileged(["-c", f"open({str(folder / 'x')!r}, 'w')"], folder.parent)
    except subprocess.SubprocessError as err:
        pytest.skip(f"cannot run a process that obeys file permissions here: {err}")
    assert probe.returncode != 0 and "PermissionError" in probe.stderr, probe


@pytest.mark.parametrize(
    "unwritable", [pytest.param("model_dir", marks=pytest.mark.slow), "checkpoints"]
)
def test_train_level_refuses_unwritable_folder_before_step_1(open_dir, unwritable):
    data = open_dir / "data"
    data.mkdir()
    model_dir = open_dir / "runs"
    model_dir.mkdir()
    if unwritable == "model_dir":
        model_dir.chmod(0o555)
        bad, what = model_dir / "level_7", "model folder"
        blocked = f"{bad} cannot be made: {model_dir}"
    else:
        model_dir.chmod(0o777)
        bad, what = model_dir / "level_7" / "checkpoints", "checkpoint folder"
        blocked = str(bad)
        bad.mkdir(parents=True)
        bad.parent.chmod(0o777)
        bad.chmod(0o555)
    _check_unprivileged(model_dir if unwritable == "model_dir" else bad)
    home = open_dir / "home"
    home.mkdir(mode=0o777)
    before = checksums(data, model_dir)
    proc = run_unprivileged(
        [str(REPO / "train_level.py"), "--level", "7", "--dataset_dir", str(data)]
        + ["--model_dir", str(model_dir), "--steps", "2", "--patch_size", "32"],
        home,
    )
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: {what} {blocked} is not writable (Permission denied)"), last
    assert "training steps" not in proc.stdout  # stopped before step 1
    assert checksums(data, model_dir) == before


# --- item 5: stale temporaries of our own naming ---------------------------------------------


def test_trainer_removes_checkpoint_debris_of_a_killed_save(tmp_path):
    from pynet_bokeh.training.pynet_task import PyNetLevelTask
    from pynet_bokeh.training.trainer import TrainConfig, Trainer

    task = PyNetLevelTask(7, tmp_path / "data", tmp_path / "runs", patch_size=32, batch_size=1)
    work = Path(task.work_dir)
    ckpts = work / "checkpoints"
    (ckpts / "ckpt-3_temp").mkdir(parents=True)
    (ckpts / "ckpt-3_temp" / "part-00000-of-00001.data-00000-of-00001").write_bytes(bytes(1000))
    (work / ".tmp-final.weights.h5.abc123.weights.h5").write_bytes(b"")
    keep = {ckpts / "ckpt-2.index": b"i", ckpts / "checkpoint": b"c", work / "notes.txt": b"n"}
    for path, data in keep.items():
        path.write_bytes(data)
    trainer = Trainer(task, TrainConfig(work_dir=task.work_dir, steps=1, learning_rate=1e-4))
    trainer.check_outputs()
    assert not (ckpts / "ckpt-3_temp").exists()
    assert not (work / ".tmp-final.weights.h5.abc123.weights.h5").exists()
    assert {p: p.read_bytes() for p in keep} == keep


def test_depth_generate_removes_its_temp_files_and_keeps_finished_maps(tmp_path):
    from depth_tools.generate import generate_depth_maps, plan_jobs

    photos = tmp_path / "photos"
    photos.mkdir()
    image_io.write_image(photos / "a.png", np.full((16, 24, 3), 0.5, np.float32))
    maps = photos / "depth_maps"
    maps.mkdir()
    (maps / ".tmp-a.png.x1y2z3.png").write_bytes(b"")  # SIGKILL during a write
    (maps / "b.png").write_bytes(b"not ours to touch")
    before = checksums(photos / "a.png", maps / "b.png")
    with pytest.warns(UserWarning, match="FALLBACK"):
        result = generate_depth_maps(plan_jobs(photos), None, progress=False)
    assert [p.name for p in result.written] == ["a.png"]
    assert sorted(p.name for p in maps.iterdir()) == ["a.fallback.json", "a.png", "b.png"]
    assert checksums(photos / "a.png", maps / "b.png") == before


# --- item 7: a depth map of the wrong shape ----------------------------------------------------


def _photo_and_depth(folder, depth_hw):
    photo = np.random.default_rng(0).random((64, 96, 3)).astype(np.float32)
    image_io.write_image(folder / "p.png", photo)
    image_io.write_image(folder / "p_depth.png", np.full(depth_hw, 0.5, np.float32))
    return image_io.read_photo(folder / "p.png"), image_io.read_depth(folder / "p_depth.png")


def test_depth_map_of_photo_aspect_at_another_size_is_resized_saying_so_once(tmp_path, monkeypatch):
    monkeypatch.setattr(image_io, "_resize_said", False)
    photo, depth = _photo_and_depth(tmp_path, (16, 24))  # a quarter, not half: same aspect
    before = checksums(tmp_path)
    name = str(tmp_path / "p_depth.png")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(3):
            x = image_io.ebb_input(photo, depth, depth_name=name)
    assert x.shape == (32, 48, 4)
    np.testing.assert_allclose(x[..., 3], 128 / 255, atol=1e-6)
    assert [str(w.message) for w in caught] == [
        f"{name}: size 24x16 is not half the photo's (48x32); resized (further depth maps of "
        "another size are resized without notice)."
    ]
    assert checksums(tmp_path) == before


def test_depth_map_of_another_aspect_is_an_error_naming_it(tmp_path):
    from pynet_bokeh.errors import BadDataError
    from pynet_bokeh.renderers import get_renderer

    photo, depth = _photo_and_depth(tmp_path, (32, 32))  # square for a 2:3 photo
    before = checksums(tmp_path)
    name = str(tmp_path / "p_depth.png")
    message = rf"{name} is 32 x 32 pixels, the photo 96 x 64: another aspect ratio"
    with pytest.raises(BadDataError, match=message):
        image_io.ebb_input(photo, depth, depth_name=name)
    with pytest.raises(BadDataError, match="depth map is 32 x 32 pixels, the photo 96 x 64"):
        get_renderer("classical").render(photo, depth)
    assert checksums(tmp_path) == before


# --- item 9: validation reporting -----------------------------------------------------------


def _ebb_split(root, split, stems):
    rng = np.random.default_rng(len(stems))
    for stem in stems:
        photo = rng.random((64, 96, 3)).astype(np.float32)
        image_io.write_image(root / split / "original" / f"{stem}.jpg", photo)
        image_io.write_image(root / split / "bokeh" / f"{stem}.jpg", photo)
        image_io.write_image(root / split / "original_depth" / f"{stem}.png", photo[::2, ::2, 0])


@pytest.fixture
def two_bad_splits(tmp_path):
    root = tmp_path / "ebb"
    _ebb_split(root, "train", ["t1", "t2"])
    _ebb_split(root, "test", ["e1", "e2"])
    truncated = root / "train" / "original" / "t1.jpg"
    truncated.write_bytes(truncated.read_bytes()[:300])
    (root / "test" / "original_depth" / "e2.png").unlink()
    return root, truncated, root / "test" / "original_depth" / "e2.png"


def test_validation_reports_both_splits_at_once(two_bad_splits):
    from pynet_bokeh.data.ebb import EbbValidationError, validate_splits

    root, truncated, missing = two_bad_splits
    before = checksums(root)
    with pytest.raises(EbbValidationError) as info:
        validate_splits(root)
    message = str(info.value)
    assert f"train: 1 of 2 pairs have problems:\n  {truncated}: cannot decode" in message
    assert f"test: 1 of 2 pairs have problems:\n  {missing}: missing depth map" in message
    assert message.endswith("or pass --skip_bad to use the other train 1, test 1 pairs.")
    assert checksums(root) == before


def test_skip_bad_writes_every_problem_to_the_run_folder(two_bad_splits, tmp_path, caplog):
    import logging

    from pynet_bokeh.training.pynet_task import PyNetLevelTask

    root, truncated, missing = two_bad_splits
    (root / "train" / "bokeh" / "t2.jpg").write_bytes(b"")  # a second train problem
    before = checksums(root)
    task = PyNetLevelTask(7, root, tmp_path / "runs", patch_size=32, batch_size=1, skip_bad=True)
    with pytest.raises(Exception, match="nothing left to use"), caplog.at_level(logging.WARNING):
        task.preflight(resuming=False)
    report = Path(task.work_dir) / "bad_pairs.txt"
    lines = report.read_text().splitlines()
    assert [line.split(": ")[0] for line in lines] == [
        str(truncated),
        str(root / "train" / "bokeh" / "t2.jpg"),
        str(missing),
    ]
    assert f"all listed in {report}" in caplog.text
    assert checksums(root) == before


def test_nothing_usable_left_does_not_suggest_skip_bad(tmp_path):
    from pynet_bokeh.data.ebb import EbbValidationError, find_pairs, validate_pairs

    _ebb_split(tmp_path, "train", ["a"])
    (tmp_path / "train" / "bokeh" / "a.jpg").unlink()
    with pytest.raises(EbbValidationError) as info:
        validate_pairs(find_pairs(tmp_path, "train"))
    assert str(info.value).endswith("a.jpg: missing bokeh target\nFix or remove these files.")
    assert "--skip_bad" not in str(info.value)


# --- item 10: flags, usage errors, file modes, TensorFlow's C++ log lines ---------------------


def _train_level(args, home, verbose=False):
    env = {"PATH": "/usr/bin:/bin", "HOME": str(home), "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, str(REPO / "train_level.py"), *args] + (["-v", "1"] if verbose else []),
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=home,
    )


def test_usage_error_is_one_line_without_tensorflow_log_lines(tmp_path):
    proc = _train_level(
        ["--level", "7", "--dataset_dir", str(tmp_path), "--learning_rate", "nan"], tmp_path
    )
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        "error: --learning_rate must be a positive number, got nan"
    ]


@pytest.mark.slow
def test_tensorflow_log_lines_are_shown_when_asked_for(tmp_path):
    proc = _train_level(
        ["--level", "7", "--dataset_dir", str(tmp_path), "--learning_rate", "nan"],
        tmp_path,
        verbose=True,
    )
    assert proc.returncode == 1
    assert any(line[:5] in ("I0000", "E0000", "W0000") for line in proc.stderr.splitlines())


@pytest.fixture
def train_flags():
    from absl import flags

    import train_level

    def parse(*args):
        flags.FLAGS.unparse_flags()
        flags.FLAGS(["train_level.py", *args])
        return train_level

    yield parse
    flags.FLAGS.unparse_flags()


@pytest.mark.parametrize(
    "flag, value", [("--checkpoint_every", "0"), ("--keep_checkpoints", "0"), ("--steps", "-3")]
)
def test_train_level_refuses_non_positive_values_naming_the_flag(
    train_flags, tmp_path, capsys, monkeypatch, flag, value
):
    from pynet_bokeh.cli.errors import absl_main

    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")  # TF is imported already
    runs = tmp_path / "runs"
    train_level = train_flags(
        "--level", "7", "--dataset_dir", str(tmp_path), "--model_dir", str(runs), flag, value
    )
    assert absl_main(train_level.main, ["train_level.py"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == f"error: {flag} must be positive, got {value}"
    assert not runs.exists()  # refused before anything was written


@pytest.mark.parametrize(
    "method, flag, value",
    [
        ("deeplens", "--steps", "0"),
        ("deeplens", "--batch_size", "0"),
        ("bradcn", "--learning_rate", "0"),
        ("bradcn", "--batch_size", "0"),
    ],
)
def test_zero_is_refused_not_read_as_the_default(
    train_flags, tmp_path, capsys, monkeypatch, method, flag, value
):
    from pynet_bokeh.cli.errors import absl_main

    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    runs = tmp_path / "runs"
    stage = "depth" if method == "deeplens" else "adcn"
    train_level = train_flags(
        "--method", method, "--stage", stage, "--dataset_dir", str(tmp_path),
        "--model_dir", str(runs), flag, value,
    )  # fmt: skip
    assert absl_main(train_level.main, ["train_level.py"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert re.match(rf"error: {flag} must be (a )?positive", err[-1]), err[-1]
    assert not runs.exists()


def test_final_weights_file_has_an_ordinary_mode(tmp_path):
    import keras

    from pynet_bokeh.weights.keras_h5 import save_weights

    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(2, name="d")(inputs))
    path = save_weights(model, tmp_path / "final.weights.h5")
    umask = os.umask(0)
    os.umask(umask)
    assert Path(path).stat().st_mode & 0o777 == 0o666 & ~umask
    assert sorted(p.name for p in tmp_path.iterdir()) == ["final.weights.h5"]


def test_depth_generate_help_lists_its_flags(tmp_path):
    code = "import sys; sys.argv[0] = 'depth-tools-generate'; from depth_tools.generate import run; run()"
    proc = subprocess.run(
        [sys.executable, "-c", code, "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)},
        cwd=tmp_path,
    )
    for flag in ("--input", "--output", "--weights", "--working_size", "--[no]fallback"):
        assert f"  {flag}:" in proc.stdout, flag


def test_depth_generate_ctrl_c_says_what_is_finished(tmp_path, capsys):
    """Ctrl-C arrives while the second batch runs: the first map is complete and kept."""
    from absl import flags

    from depth_tools import generate

    calls = []

    def predict(rgb):
        calls.append(len(rgb))
        if len(calls) == 2:
            raise KeyboardInterrupt
        return np.ones(rgb.shape[:3], np.float32)

    generate.register_depth_source("interrupted-in-test")(
        lambda weights: generate.DepthSource("interrupted-in-test", predict, "inverse_depth", 16)
    )
    photos = tmp_path / "photos"
    for stem in ("a", "b", "c"):
        image_io.write_image(photos / f"{stem}.png", np.full((32, 32, 3), 0.5, np.float32))
    before = checksums(photos)
    fv = flags.FlagValues()
    generate.define_flags(fv)
    fv(["x", "--input", str(photos), "--model", "interrupted-in-test", "--batch_size", "1"])
    try:
        assert generate.main(["x"], fv) == 130
    finally:
        del generate.DEPTH_SOURCES["interrupted-in-test"]
    err = capsys.readouterr().err
    assert "interrupted: 1 map(s) written by this run" in err and "run the same command" in err
    maps = photos / "depth_maps"
    assert sorted(p.name for p in maps.iterdir()) == ["a.png"]  # no .tmp-* left
    assert image_io.read_depth(maps / "a.png").shape == (16, 16)
    assert {k: v for k, v in checksums(photos).items() if "depth_maps" not in k} == before


# --- item 8: a weights file of another network, summarised in one line -------------------------


def _small_network(name):
    import keras

    inputs = keras.Input((8, 8, 4))
    x = keras.layers.Conv2D(4, 3, padding="same", name="enc_conv")(inputs)
    return keras.Model(inputs, keras.layers.Conv2D(3, 1, name="head")(x), name=name)


@pytest.mark.slow  # heavy: the default suite keeps under 15 min on 2 cores
def test_weights_of_another_network_are_named_in_one_line(tmp_path):
    from pynet_bokeh.errors import WeightsMismatchError
    from pynet_bokeh.renderers.pynet import load_pynet
    from pynet_bokeh.weights.keras_h5 import save_weights

    other = _small_network("bradcn_adcn")
    tagged = save_weights(other, tmp_path / "adcn.weights.h5")  # the trainer's own format
    other.save_weights(tmp_path / "plain.weights.h5")  # Keras' format, no names recorded
    other.save(tmp_path / "adcn.keras")
    before = checksums(tmp_path)
    expected = {
        "adcn.weights.h5": r"adcn\.weights\.h5 holds network 'bradcn_adcn' \(2 layers\), not "
        r"the weights of network 'pynet' \(\d+ of its \d+ layers missing\)$",
        "plain.weights.h5": r"plain\.weights\.h5 holds a network of 2 layers named like "
        r"'conv2d', 'conv2d_1', not the weights of PyNET \('pynet'\): ",
        "adcn.keras": r"adcn\.keras holds network 'bradcn_adcn' \(2 layers\), not PyNET",
    }
    for name, pattern in expected.items():
        with pytest.raises(WeightsMismatchError) as info:
            load_pynet(tmp_path / name)
        message = str(info.value)
        assert "\n" not in message and len(message) < 400, message
        assert re.search(pattern, message), message
    assert tagged.endswith("adcn.weights.h5") and checksums(tmp_path) == before


@pytest.mark.slow  # heavy: the default suite keeps under 15 min on 2 cores
def test_init_from_a_truncated_weights_file_is_one_line(train_flags, tmp_path, capsys, monkeypatch):
    from pynet_bokeh.weights.keras_h5 import save_weights

    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")  # TF is imported already
    whole = save_weights(_small_network("pynet"), tmp_path / "whole.weights.h5")
    truncated = tmp_path / "truncated.weights.h5"
    truncated.write_bytes(Path(whole).read_bytes()[:3000])
    _ebb_split(tmp_path / "ebb", "train", ["a"])
    before = checksums(truncated, tmp_path / "ebb")
    train_level = train_flags(
        "--level", "7", "--dataset_dir", str(tmp_path / "ebb"), "--model_dir",
        str(tmp_path / "runs"), "--init_from", str(truncated), "--patch_size", "32",
        "--batch_size", "1", "--steps", "1", "--eval_batches", "0",
    )  # fmt: skip
    assert train_level.main(["train_level.py"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"error: {truncated} is not a readable HDF5 weights file")
    assert checksums(truncated, tmp_path / "ebb") == before


# --- items 1 and 6: outputs planned apart from every input -------------------------------------


def test_same_stem_photos_get_distinct_outputs_and_input_folders_are_refused(tmp_path):
    from pynet_bokeh.errors import UsageError
    from pynet_bokeh.files import plan_outputs

    photos, depth, out = tmp_path / "photos", tmp_path / "depth", tmp_path / "out"
    for path in (photos / "a.jpg", photos / "a.png", photos / "b.jpg", depth / "a.png"):
        image_io.write_image(path, np.full((8, 8, 3), 0.5, np.float32))
    inputs = [photos / "a.jpg", photos / "a.png", photos / "b.jpg"]
    before = checksums(tmp_path)
    assert plan_outputs(inputs, out, ".png", protected=[depth]) == [
        (photos / "a.jpg", out / "a.jpg.png"),
        (photos / "a.png", out / "a.png.png"),
        (photos / "b.jpg", out / "b.png"),
    ]
    for folder, held in ((depth, depth), (photos, photos / "a.jpg")):
        message = rf"--output_dir {folder} is an input folder \(it holds {held}\)"
        with pytest.raises(UsageError, match=message):
            plan_outputs(inputs, folder, ".png", protected=[depth])
    with pytest.raises(UsageError, match=rf"--output_dir {depth} is an input folder"):
        plan_outputs(inputs, depth, ".png", protected=[depth / "a.png"])  # a protected file
    clash = [photos / "a.jpg", photos / "a.jpg.png"]  # a.jpg.png's own output is a.jpg.png
    (photos / "a.jpg.png").write_bytes(b"")
    with pytest.raises(UsageError, match=r"a\.jpg and .*a\.jpg\.png would both be written"):
        plan_outputs(clash + [photos / "a.png"], out, ".png")
    (photos / "a.jpg.png").unlink()
    assert checksums(tmp_path) == before and not out.exists()


def _render_set(root):
    """original/{a.jpg, a.png, b.png} and original_depth/{a.png, b.png} (EBB! layout)."""
    rng = np.random.default_rng(1)
    for name in ("a.jpg", "a.png", "b.png"):
        image_io.write_image(root / "original" / name, rng.random((32, 48, 3)))
    for stem in ("a", "b"):
        image_io.write_image(root / "original_depth" / f"{stem}.png", rng.random((16, 24)))
    return root


@pytest.mark.parametrize("target", ["original_depth", "original"])
def test_render_refuses_an_input_folder_as_output(tmp_path, capsys, target):
    from pynet_bokeh.cli import main

    root = _render_set(tmp_path / "set")
    before = checksums(root)
    argv = ["render", str(root / "original"), "--method", "classical", "--blur", "4"]
    assert main([*argv, "--output_dir", str(root / target), "--overwrite"]) == 2
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line.startswith(f"error: --output_dir {root / target} is an input folder (it holds ")
    assert checksums(root) == before


def test_render_writes_same_stem_photos_apart(tmp_path, capsys):
    from pynet_bokeh.cli import main

    root = _render_set(tmp_path / "set")
    before = checksums(root)
    out = tmp_path / "out"
    (out / ".tmp-a.png.killed.png").parent.mkdir()
    (out / ".tmp-a.png.killed.png").write_bytes(b"")  # left by a killed run
    argv = ["render", str(root / "original"), "--method", "classical", "--blur", "0"]
    assert main([*argv, "--output_dir", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["a.jpg.png", "a.png.png", "b.png"]
    for name in ("a.jpg", "a.png"):  # blur 0: each output is its own photo
        np.testing.assert_allclose(
            image_io.read_photo(out / f"{name}.png"),
            image_io.read_photo(root / "original" / name),
            atol=1 / 255,
        )
    assert checksums(root) == before


def _lambda_keras(path):
    import keras

    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Lambda(lambda x: x * 2)(inputs), name="lam")
    model.save(path)
    return path


@pytest.mark.parametrize("command", ["evaluate", "export_tflite"])
def test_scripts_report_bad_inputs_in_one_line(tmp_path, capsys, command):
    """A Lambda .keras (refused by Keras' safe mode) and a split without bokeh/ targets."""
    import importlib

    from absl import flags

    from pynet_bokeh.cli.errors import absl_main

    module = importlib.import_module(command)
    lam = _lambda_keras(tmp_path / "lam.keras")
    _ebb_split(tmp_path / "ebb", "test", ["a"])
    shutil.rmtree(tmp_path / "ebb" / "test" / "bokeh")
    out = ["--out_dir", str(tmp_path / "o")] if command == "evaluate" else []
    out = out or ["--output", str(tmp_path / "o.tflite")]
    cases = [(["--weights", str(lam)], rf"error: --weights {lam}: cannot load this \.keras")]
    if command == "evaluate":
        cases.append(
            (
                ["--method", "classical", "--dataset_dir", str(tmp_path / "ebb")],
                r"error: .*ebb/test: 1 sample\(s\) lack a photo, depth map or bokeh target",
            )
        )
    before = checksums(tmp_path)
    for args, pattern in cases:
        if command == "evaluate" and "--dataset_dir" not in args:
            args = [*args, "--photos_dir", str(tmp_path / "ebb" / "test" / "original")]
        fv = flags.FlagValues()
        module.define_flags(fv)
        fv([command, *args, *out])
        assert absl_main(lambda argv, fv=fv: module.main(argv, fv), [command]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and re.match(pattern, err[0]), err
    assert checksums(tmp_path) == before
