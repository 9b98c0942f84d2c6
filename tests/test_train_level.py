"""train_level.py: flags, resume after SIGKILL, mirrored strategy, clear errors."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from absl import flags

import train_level
from pynet_bokeh.errors import UsageError
from pynet_bokeh.training.config import SYNTHETIC_CHECKPOINT_EVERY, SYNTHETIC_SET
from pynet_bokeh.training.schedule import synthetic_schedule

REPO = Path(__file__).resolve().parents[1]
SCRIPT = str(REPO / "train_level.py")
TINY = ["--patch_size", "32", "--batch_size", "2", "--eval_every", "1000", "--eval_batches", "0"]


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory):
    from pynet_bokeh.data.synthetic import ensure_synthetic

    return ensure_synthetic(tmp_path_factory.mktemp("synth"), n_train=4, n_test=2, size=(64, 64))


@pytest.fixture
def parse_flags():
    def parse(*args):
        flags.FLAGS.unparse_flags()
        flags.FLAGS(["train_level.py", *args])
        return flags.FLAGS

    yield parse
    flags.FLAGS.unparse_flags()


def _env():
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    return env


def _run(args, timeout=300):
    return subprocess.run(
        [sys.executable, SCRIPT, *args], capture_output=True, text=True, timeout=timeout, env=_env()
    )


def test_synthetic_picks_the_small_schedule_and_prints_it(
    parse_flags, monkeypatch, tiny_set, capsys
):
    import pynet_bokeh.data.synthetic as synthetic

    calls = []
    monkeypatch.setattr(
        synthetic, "ensure_synthetic", lambda cache, **kw: calls.append(kw) or tiny_set
    )
    parse_flags("--level", "7", "--synthetic", "--model_dir", "/tmp/x", "--steps", "12")
    task, config = train_level.task_from_flags()
    sched = synthetic_schedule(7)
    assert calls == [SYNTHETIC_SET]
    assert (task.patch_size, task.batch_size) == (sched.patch_size, sched.batch_size)
    assert (config.steps, config.learning_rate) == (12, sched.learning_rate)
    assert config.checkpoint_every == SYNTHETIC_CHECKPOINT_EVERY
    assert task.work_dir == os.path.join("/tmp/x", "level_7")
    out = capsys.readouterr().out
    assert f"level 7: batch {sched.batch_size}, 12 steps" in out and "synthetic CPU schedule" in out


@pytest.mark.parametrize(
    "args, match",
    [
        (["--level", "1", "--synthetic"], "--vgg_weights .*--no_vgg"),
        (["--level", "1", "--no_vgg", "--vgg_weights", "v.h5"], "either --vgg_weights or --no_vgg"),
        (["--level", "5", "--patch_size", "48"], "--patch_size must be a positive multiple of 32"),
        (["--level", "9"], "level must be one of 1..7"),
        (["--level", "7"], "pass --dataset_dir"),
        (["--synthetic"], "pass --level"),
    ],
)
def test_bad_flags_are_named(parse_flags, args, match):
    parse_flags(*args)
    with pytest.raises(UsageError, match=match):
        train_level.task_from_flags()


def test_a_model_without_a_training_task_is_named(parse_flags, monkeypatch):
    from pynet_bokeh.renderers.bradcn import BradcnRenderer

    monkeypatch.setattr(BradcnRenderer, "training_task", "pynet_bokeh.training.no_such_task")
    parse_flags("--model", "bradcn", "--stage", "adcn")
    with pytest.raises(UsageError, match=r"--model bradcn: no training task yet"):
        train_level.task_from_flags()
    parse_flags("--model", "classical")
    with pytest.raises(UsageError, match=r"--model classical has no training"):
        train_level.task_from_flags()


def test_cli_prints_one_error_line_not_a_traceback(tmp_path, tiny_set):
    res = _run(["--level", "7", "--init_from", str(tmp_path / "nope.weights.h5"),
                "--dataset_dir", str(tiny_set), "--model_dir", str(tmp_path), *TINY])  # fmt: skip
    assert res.returncode == 1
    assert "Traceback" not in res.stderr
    lines = [line for line in res.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and "nope.weights.h5" in lines[0]


def test_missing_vgg_file_is_named_before_training(parse_flags, tmp_path):
    from pynet_bokeh.training.vgg import VGGWeightsError

    parse_flags("--level", "1", "--vgg_weights", str(tmp_path / "vgg19.h5"))
    with pytest.raises(VGGWeightsError, match=r"not found: .*vgg19\.h5"):
        train_level.task_from_flags()


def test_level_6_without_level_7_stops_with_a_clear_message(tmp_path, tiny_set):
    res = _run(
        ["--level", "6", "--dataset_dir", str(tiny_set), "--model_dir", str(tmp_path), *TINY]
    )
    assert res.returncode == 1
    assert f"{tmp_path}/level_7/final.weights.h5 does not exist" in res.stderr
    assert "Train level 7 first" in res.stderr
    assert not (tmp_path / "level_6").exists()


def _wait_for(path, proc, timeout):
    end = time.time() + timeout
    while time.time() < end:
        if path.exists():
            return
        if proc.poll() is not None:
            out = proc.stdout.read()
            pytest.fail(f"training exited ({proc.returncode}) before its first checkpoint:\n{out}")
        time.sleep(0.05)
    proc.kill()
    pytest.fail(f"no checkpoint after {timeout} s")


@pytest.mark.slow  # heavy: the default suite keeps under 15 min on 2 cores
def test_sigkill_after_first_checkpoint_then_rerun_resumes_with_optimizer_state(tmp_path, tiny_set):
    from pynet_bokeh.training.pynet_task import PyNetLevelTask
    from pynet_bokeh.training.trainer import TrainConfig, Trainer

    args = ["--level", "7", "--dataset_dir", str(tiny_set), "--model_dir", str(tmp_path), *TINY]
    ckpt_dir = tmp_path / "level_7" / "checkpoints"
    # eager steps: the resume logic does not depend on tracing, which would cost ~10-30 s
    args.append("--run_eagerly")
    proc = subprocess.Popen(
        [sys.executable, SCRIPT, *args, "--steps", "1000", "--checkpoint_every", "3"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=_env(),
    )
    _wait_for(ckpt_dir / "checkpoint", proc, timeout=240)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL

    prefix = tf.train.latest_checkpoint(str(ckpt_dir))
    reader = tf.train.load_checkpoint(prefix)
    step = int(reader.get_tensor("step/.ATTRIBUTES/VARIABLE_VALUE"))
    assert step >= 3 and step % 3 == 0
    assert int(reader.get_tensor("optimizer/_iterations/.ATTRIBUTES/VARIABLE_VALUE")) == step

    # What a restarted run restores: step, iterations and every Adam slot, bit for bit.
    task = PyNetLevelTask(7, tiny_set, tmp_path, patch_size=32, batch_size=2)
    trainer = Trainer(task, TrainConfig(task.work_dir, steps=step + 2, learning_rate=1e-4))
    assert trainer.setup() == step
    assert int(trainer.optimizer.iterations.numpy()) == step
    slots = trainer.optimizer.variables[2:]
    assert len(slots) == 2 * len(trainer.train_model.trainable_variables)
    for i, var in enumerate(slots, start=2):
        saved = reader.get_tensor(f"optimizer/_variables/{i}/.ATTRIBUTES/VARIABLE_VALUE")
        np.testing.assert_array_equal(var.numpy(), saved)
    assert max(float(np.abs(v.numpy()).max()) for v in slots) > 0
    del trainer

    res = _run([*args, "--steps", str(step + 2), "--checkpoint_every", "3"])
    assert res.returncode == 0, res.stdout + res.stderr
    assert f"at step {step} (optimizer iterations {step})" in res.stdout
    assert f"done: steps {step} -> {step + 2}" in res.stdout
    final = tf.train.load_checkpoint(tf.train.latest_checkpoint(str(ckpt_dir)))
    assert int(final.get_tensor("step/.ATTRIBUTES/VARIABLE_VALUE")) == step + 2
    assert int(final.get_tensor("optimizer/_iterations/.ATTRIBUTES/VARIABLE_VALUE")) == step + 2
    assert (tmp_path / "level_7" / "final.weights.h5").is_file()
    # the run recorded which images it trained on, for evaluate.py's overlap warning
    record = json.loads((tmp_path / "level_7" / "train_stems.json").read_text())
    assert record["split"] == "train" and record["stems"] == ["0", "1", "2", "3"]
    assert record["dataset_dir"] == os.path.abspath(tiny_set)


MIRRORED = """
import sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import train_level
sys.argv = ["train_level.py"] + sys.argv[1:]
train_level.run()
"""


@pytest.mark.slow  # heavy: the default suite keeps under 15 min on 2 cores
def test_mirrored_strategy_trains_on_two_logical_cpus(tmp_path, tiny_set):
    args = ["--level", "7", "--dataset_dir", str(tiny_set), "--model_dir", str(tmp_path), *TINY]
    res = subprocess.run(
        [sys.executable, "-c", MIRRORED, *args, "--steps", "3", "--strategy", "mirrored"],
        capture_output=True,
        text=True,
        timeout=300,
        env=_env(),
        cwd=REPO,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert "training steps 0 -> 3 on 2 device(s)" in res.stdout
    assert "done: steps 0 -> 3" in res.stdout
    loss = float(res.stdout.split("done: steps 0 -> 3, loss ")[1].split(" -> ")[1].split(",")[0])
    assert np.isfinite(loss)
    assert (tmp_path / "level_7" / "final.weights.h5").is_file()


@pytest.mark.slow
def test_readme_main_job_then_level_6_picks_it_up(tmp_path):
    """The README's main-job command (level 7 on generated data), then level 6 for 2 steps."""
    env_args = ["--model_dir", str(tmp_path / "runs"), "--dataset_dir", str(tmp_path / "cache")]
    res = _run(["--level", "7", "--synthetic", *env_args], timeout=1800)
    assert res.returncode == 0, res.stdout + res.stderr
    first, last = res.stdout.split("done: steps 0 -> 300, loss ")[1].split(",")[0].split(" -> ")
    assert float(last) < 0.8 * float(first)
    res = _run(["--level", "6", "--synthetic", "--steps", "2", *env_args], timeout=600)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "level 7's final weights, 225 layers by name" in res.stdout
