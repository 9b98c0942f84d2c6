"""evaluate.py --protocol authors scores what the authors' unmodified test_model.py prints.

The authors' script (../shared/fixtures/authors_script, run under TF 2.21 with scipy.misc restored
from SciPy 1.2.3's pilutil) and evaluate.py score the seed-0 TF1 checkpoint on the same small
EBB!-layout split. Slow: two TensorFlow start-ups and the authors' TF1 graph (~1-2 min on 2 cores).
"""

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pynet_bokeh.data.synthetic import generate_dataset

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = (
    "test_model.py",
    "model.py",
    "load_dataset.py",
    "utils.py",
    "pilutil.py",
    "run_authors.py",
)

pytestmark = pytest.mark.slow


def _env():
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    return env


@pytest.fixture(scope="module")
def authors_folder(fixtures_dir, tf1_prefix, tmp_path_factory):
    """A folder laid out as the authors' script expects (see the fixture's README)."""
    root = tmp_path_factory.mktemp("authors")
    for name in SCRIPTS:
        shutil.copy(fixtures_dir / "authors_script" / name, root / name)
    # widths multiple of 64: the script cuts its half-size input to a multiple of 32
    generate_dataset(root / "ebb", n_train=0, n_test=2, size=(256, 384), seed=0)
    for sub in ("visual_samples/images", "visual_samples/depth_maps", "results/full-resolution"):
        (root / sub).mkdir(parents=True)
    shutil.copy(root / "ebb/test/original/0.jpg", root / "visual_samples/images/0.jpg")
    shutil.copy(root / "ebb/test/original_depth/0.png", root / "visual_samples/depth_maps/0.png")
    models = root / "models" / "original"
    models.mkdir(parents=True)
    for path in tf1_prefix.parent.glob(tf1_prefix.name + ".*"):
        shutil.copy(path, models / path.name)
    return root


@pytest.fixture(scope="module")
def authors_scores(authors_folder):
    """{file stem: (psnr, ssim, ms_ssim)} as the authors' test_model.py prints them."""
    res = subprocess.run(
        [sys.executable, "run_authors.py", "level=1", "orig=true", "use_gpu=false"]
        + ["dataset_dir=ebb/"],
        cwd=authors_folder,
        capture_output=True,
        text=True,
        timeout=900,
        env=_env(),
    )
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    scores = {}
    for line in res.stdout.splitlines():
        parts = line.split()
        if len(parts) == 5 and parts[0].endswith(".jpg") and parts[1].isdigit():
            scores[parts[0][: -len(".jpg")]] = tuple(float(v) for v in parts[2:])
    assert sorted(scores) == ["0", "1"], res.stdout[-3000:]
    return scores


def test_evaluate_protocol_authors_scores_what_the_authors_script_prints(
    authors_folder, authors_scores, tf1_prefix, tmp_path
):
    out = tmp_path / "eval"
    res = subprocess.run(
        [sys.executable, str(REPO / "evaluate.py"), f"--tf1_checkpoint={tf1_prefix}"]
        + [f"--dataset_dir={authors_folder / 'ebb'}", "--split=test", "--protocol=authors"]
        + ["--baselines=", "--num_panels=0", f"--out_dir={out}"],
        capture_output=True,
        text=True,
        timeout=900,
        env=_env(),
    )
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    with open(out / "per_image.csv") as f:
        rows = {r["stem"]: r for r in csv.DictReader(f)}
    assert sorted(rows) == ["0", "1"]
    for stem, (psnr, ssim, ms_ssim) in authors_scores.items():
        assert float(rows[stem]["psnr"]) == pytest.approx(psnr, abs=0.01)
        assert float(rows[stem]["ssim"]) == pytest.approx(ssim, abs=2e-4)
        assert float(rows[stem]["ms_ssim"]) == pytest.approx(ms_ssim, abs=2e-4)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["settings"]["protocol"] == "authors"
    (method,) = summary["methods"].values()
    assert set(method) >= {"psnr", "ssim", "ms_ssim"}
    mean_psnr = sum(v[0] for v in authors_scores.values()) / 2
    assert method["psnr"] == pytest.approx(mean_psnr, abs=0.01)
