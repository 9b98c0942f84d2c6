"""evaluation: --shard I/N covers a split once, an interrupted shard resumes, --merge joins the
shards into the report one process would write. Baseline renderers (identity, classical)."""

import json
import math
import os

import pytest

from pynet_bokeh import evaluation
from pynet_bokeh.data.synthetic import generate_dataset
from pynet_bokeh.errors import UsageError
from pynet_bokeh.sharding import parse_shard, shard_items


@pytest.fixture(scope="module")
def samples(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    generate_dataset(root, n_train=0, n_test=5, size=(64, 96), seed=3)
    return evaluation.dataset_samples(root, "test")


IDENTITY = {"identity": evaluation.baseline_renderers()["identity"]}


def _evaluate(samples, out, shard=None, renderers=None):
    return evaluation.evaluate(
        renderers or evaluation.baseline_renderers(),
        samples,
        out,
        num_panels=2,
        border=8,
        progress=False,
        source="synthetic",
        shard=shard,
    )


def _rows(out):
    lines = (out / "per_image.csv").read_text().splitlines()
    return lines[0], sorted(lines[1:])


def test_parse_shard():
    assert parse_shard("1/3") == (1, 3) and parse_shard(None) is None
    assert shard_items(range(7), (1, 3)) == [1, 4]
    for bad in ("3/3", "-1/2", "1/0", "a/b", "1"):
        with pytest.raises(UsageError, match="--shard"):
            parse_shard(bad)


def test_shards_merge_into_the_single_process_report(samples, tmp_path):
    whole = _evaluate(samples, tmp_path / "whole")
    parts = [_evaluate(samples, tmp_path / f"part{i}", shard=(i, 2)) for i in range(2)]
    assert [p["count"] for p in parts] == [3, 2]
    stems = [{line.split(",")[0] for line in _rows(tmp_path / f"part{i}")[1]} for i in range(2)]
    assert stems[0] | stems[1] == {s.stem for s in samples} and not stems[0] & stems[1]

    merged = evaluation.merge_evaluations([tmp_path / "part1", tmp_path / "part0"], tmp_path / "m")
    assert merged["count"] == whole["count"] == 5
    for name, m in whole["methods"].items():
        for key in ("psnr", "ssim", "ms_ssim"):
            assert merged["methods"][name][key] == pytest.approx(m[key], rel=1e-12), (name, key)
    assert math.isfinite(merged["methods"]["classical"]["psnr"])
    # per-image scores are the same rows (the time column aside)
    strip = lambda rows: sorted(r.rsplit(",", 1)[0] for r in rows)  # noqa: E731
    assert strip(_rows(tmp_path / "m")[1]) == strip(_rows(tmp_path / "whole")[1])
    assert merged["settings"] == whole["settings"]
    panels = merged["files"]["panels"]
    assert len(panels) == 4 and all((tmp_path / "m" / p).is_file() for p in panels)
    assert {"report.md", "summary.json", "per_image.csv"} <= set(os.listdir(tmp_path / "m"))


def test_an_interrupted_shard_resumes_without_redoing_images(samples, tmp_path):
    calls = []

    def counting(photo, depth):
        calls.append(1)
        return photo

    class Stop(Exception):
        pass

    def failing_third(photo, depth):
        if len(calls) == 2:
            raise Stop  # killed while on the third image
        return counting(photo, depth)

    out = tmp_path / "shard"
    with pytest.raises(Stop):
        _evaluate(samples, out, renderers={"identity": failing_third})
    assert len(calls) == 2
    # a kill mid-write leaves a torn last line
    with open(out / evaluation.ROWS_FILE, "a") as f:
        f.write('{"stem": "2", "rows": [')
    calls.clear()
    summary = _evaluate(samples, out, renderers={"identity": counting})
    assert len(calls) == 3 and summary["count"] == 5  # only the 3 missing images
    lines = (out / evaluation.ROWS_FILE).read_text().splitlines()
    assert len(lines) == 6 and all(json.loads(line) for line in lines)
    # another method set in the same folder starts over instead of mixing results
    calls.clear()
    _evaluate(samples, out, renderers={"counted": counting, **evaluation.baseline_renderers()})
    assert len(calls) == 5


def test_merge_refuses_missing_repeated_or_mismatched_shards(samples, tmp_path):
    for i in range(2):
        _evaluate(samples, tmp_path / f"p{i}", shard=(i, 2), renderers=IDENTITY)
    with pytest.raises(UsageError, match="need shards 0/2 .. 1/2 once each, got 0/2$"):
        evaluation.merge_evaluations([tmp_path / "p0"], tmp_path / "m")
    with pytest.raises(UsageError, match="got 0/2, 0/2"):
        evaluation.merge_evaluations([tmp_path / "p0", tmp_path / "p0"], tmp_path / "m")
    _evaluate(samples, tmp_path / "other", shard=(1, 2), renderers={"other": lambda p, d: p})
    with pytest.raises(UsageError, match="other methods, settings or images"):
        evaluation.merge_evaluations([tmp_path / "p0", tmp_path / "other"], tmp_path / "m")
    _evaluate(samples, tmp_path / "whole", renderers=IDENTITY)
    with pytest.raises(UsageError, match="not a shard's results"):
        evaluation.merge_evaluations([tmp_path / "whole"], tmp_path / "m")
    # an unfinished shard: its last image's line is missing
    rows = tmp_path / "p1" / evaluation.ROWS_FILE
    rows.write_text("\n".join(rows.read_text().splitlines()[:-1]) + "\n")
    with pytest.raises(UsageError, match="shard 1/2 is unfinished .1 of 2 images"):
        evaluation.merge_evaluations([tmp_path / "p0", tmp_path / "p1"], tmp_path / "m")
    assert not (tmp_path / "m").exists()


def test_evaluate_py_shard_and_merge_flags(samples, tmp_path, capsys):
    from absl import flags

    import evaluate

    root = samples[0].photo.parents[2]

    def cli(*args):
        fv = evaluate.define_flags(flags.FlagValues())
        fv(["evaluate.py", "--method", "classical", "--baselines", "identity", "--border", "8",
            "--num_panels", "1", *args])  # fmt: skip
        return evaluate.main([], fv)

    for i in range(2):
        out = str(tmp_path / f"s{i}")
        assert cli("--dataset_dir", str(root), "--shard", f"{i}/2", "--out_dir", out) == 0
    assert "shard 1/2; join the shards with --merge" in capsys.readouterr().out
    merge = f"--merge={tmp_path / 's0'},{tmp_path / 's1'}"
    assert cli(merge, "--out_dir", str(tmp_path / "all")) == 0
    assert "5 images ->" in capsys.readouterr().out
    summary = json.loads((tmp_path / "all" / "summary.json").read_text())
    assert summary["count"] == 5 and set(summary["methods"]) == {"classical", "identity"}
    with pytest.raises(UsageError, match="--shard 2/2"):
        cli("--dataset_dir", str(root), "--shard", "2/2", "--out_dir", str(tmp_path / "x"))
    with pytest.raises(UsageError, match="leave out --shard"):
        cli(merge, "--shard", "0/2", "--out_dir", str(tmp_path / "x"))
