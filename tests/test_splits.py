"""Val294 selection, the trained-stems record and the overlap it reveals."""

import json

from pynet_bokeh.data import splits
from pynet_bokeh.data.ebb import EbbPair


def _pairs(stems):
    return [EbbPair(s, None, None, None) for s in stems]


def test_val294_is_train_4400_to_4693_by_number():
    folder, wanted = splits.resolve_split("val294")
    assert folder == "train" and len(wanted) == 294
    assert (min(wanted), max(wanted)) == (4400, 4693)
    stems = ["9", "4399", "4400", "04401", "4693", "4694", "4400_b", "x"]
    chosen = [p.stem for p in splits.select_stems(_pairs(stems), wanted)]
    assert chosen == ["4400", "04401", "4693"]
    assert splits.resolve_split("test") == ("test", None)
    assert len(splits.select_stems(_pairs(stems), None)) == len(stems)


def test_record_is_found_beside_the_weights_and_in_sibling_levels(tmp_path):
    data = tmp_path / "EBB"
    run = tmp_path / "runs" / "pynet"
    splits.write_trained_stems(run / "level_2", data, ["4401", "10", "4400"])
    (run / "level_1").mkdir()
    weights = run / "level_1" / "final.weights.h5"
    weights.write_bytes(b"")
    record = json.loads((run / "level_2" / "train_stems.json").read_text())
    assert record["stems"] == ["10", "4400", "4401"] and record["count"] == 3
    found = splits.trained_stems_near(weights)
    assert [f[0].parent.name for f in found] == ["level_2"]
    assert splits.overlap(found, data, "train", ["4400", "4401", "4402"]) == ["4400", "4401"]
    # the test split's stems are other images even where the names repeat
    assert splits.overlap(found, data, "test", ["10", "4400"]) == []
    # another data set with the same split name is not the same images
    assert splits.overlap(found, tmp_path / "synthetic", "train", ["10"]) == []


def test_unreadable_records_are_skipped(tmp_path):
    (tmp_path / "level_1").mkdir()
    (tmp_path / "level_1" / "train_stems.json").write_text("{not json")
    assert splits.trained_stems_near(tmp_path / "level_1" / "final.weights.h5") == []
    assert splits.trained_stems_near(None) == []
