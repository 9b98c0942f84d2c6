"""Flags -> training: the validation cache on resume, DeepLens data validation and --skip_bad."""

import os

import pytest

from pynet_bokeh.data import ebb
from pynet_bokeh.data.synthetic import ensure_synthetic


@pytest.fixture
def counted_decodes(monkeypatch):
    calls = []
    original = ebb._check_image

    def counting(path, kind):
        calls.append(str(path))
        return original(path, kind)

    monkeypatch.setattr(ebb, "_check_image", counting)
    return calls


@pytest.fixture
def small_set(tmp_path):
    return ensure_synthetic(tmp_path / "data", n_train=3, n_test=1, size=(64, 96), variants=2)


def test_a_rerun_does_not_decode_the_data_set_again(small_set, tmp_path, counted_decodes):
    from pynet_bokeh.training.pynet_task import PyNetLevelTask

    task = PyNetLevelTask(7, small_set, tmp_path / "runs", patch_size=32, batch_size=1)
    task.preflight(resuming=False)
    first = len(counted_decodes)
    assert first == 3 * (6 + 2)  # photo, depth map, bokeh of 6 train + 2 test samples
    assert (tmp_path / "runs" / "level_7" / "validation_cache.json").is_file()
    counted_decodes.clear()
    task.preflight(resuming=True)
    assert counted_decodes == []  # the resumed run reads the cache, decodes nothing
    photo = small_set / "train" / "original" / "0_0.jpg"
    os.utime(photo, ns=(1, 1))  # another modification time: checked again, alone
    task.preflight(resuming=True)
    assert counted_decodes == [str(photo)]


def test_deeplens_training_validates_and_skips_bad_pairs(small_set, tmp_path):
    from pynet_bokeh.errors import BadDataError
    from pynet_bokeh.training.deeplens_task import DeepLensStageTask

    bad = small_set / "train" / "original" / "1_1.jpg"
    bad.write_bytes(bad.read_bytes()[:200])  # truncated JPEG
    task = DeepLensStageTask("depth", small_set, tmp_path / "runs", batch_size=1)
    with pytest.raises(BadDataError, match=r"1_1\.jpg"):
        task.preflight(resuming=False)
    task = DeepLensStageTask("depth", small_set, tmp_path / "runs2", batch_size=1, skip_bad=True)
    task.preflight(resuming=False)
    stems = sorted(s["photo"].rsplit("/", 1)[1] for s in task._samples["train"])
    assert stems == ["0_0.jpg", "0_1.jpg", "1_0.jpg", "2_0.jpg", "2_1.jpg"]
