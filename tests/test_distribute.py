"""tf.distribute: `mirrored` and `multi_worker` compute what one device computes.

Each side runs in its own process (tests/distributed_run.py): logical devices and
MultiWorkerMirroredStrategy must be set up before TensorFlow starts. Weights are compared per
tensor as max|difference| / max|weight|.

- mirrored: one step of the real PyNET's level 7 (patch 64, batch 4) on 2 logical CPU devices
  against one device, same weights and batch: <= 1e-4 over the weights whose gradient is not
  rounding noise (see distributed_run.determined_elements: Adam's first step is +-lr whatever
  the gradient's size, so a gradient that is exactly 0 in exact arithmetic moves its weight by
  +-lr at random on any device).
- multi_worker: 2 local workers (localhost ports) against one process, 8 Adam steps on the real
  EBB pipeline and PyNET's level-5 task with a small net: <= 1e-3; one process fed what 2
  workers that both read part 0 of each batch would compute misses by > 0.1.
- kill -9 the chief mid-run, rerun both workers: the run resumes from the chief's last
  checkpoint and ends at the same step, with the same weights as the uninterrupted run.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from pynet_bokeh.training.checkpointing import read_weights_by_name

REPO = Path(__file__).resolve().parents[1]
HELPER = str(REPO / "tests" / "distributed_run.py")
STEPS, CHECKPOINT_EVERY = 8, 2


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory):
    from pynet_bokeh.data.synthetic import ensure_synthetic

    return ensure_synthetic(tmp_path_factory.mktemp("synth"), n_train=4, n_test=2, size=(128, 128))


def _env(tmp, tf_config=None):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1", TMPDIR=str(tmp))
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    env.pop("TF_CONFIG", None)
    if tf_config is not None:
        env["TF_CONFIG"] = json.dumps(tf_config)
    return env


def _free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


class Proc:
    """A helper process writing to a log file."""

    def __init__(self, log, args, env):
        self.log = Path(log)
        with open(self.log, "w") as out:
            self.popen = subprocess.Popen(
                [sys.executable, HELPER, *map(str, args)],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=REPO,
            )

    def wait(self, timeout=600):
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()
        return self.popen.returncode

    def text(self):
        return self.log.read_text()

    def result(self):
        text = self.text()
        assert self.popen.returncode == 0 and "RESULT " in text, text[-3000:]
        return json.loads(text.split("RESULT ")[-1].splitlines()[0])


def _workers(tmp, name, data, model_dir, *extra):
    ports = _free_ports(2)
    cluster = {"worker": [f"localhost:{p}" for p in ports]}
    args = ["train", data, model_dir, "--strategy", "multi_worker", "--steps", STEPS]
    args += ["--checkpoint_every", CHECKPOINT_EVERY, *extra]
    return [
        Proc(
            tmp / f"{name}{i}.log",
            args,
            _env(tmp / "scratch", {"cluster": cluster, "task": {"type": "worker", "index": i}}),
        )
        for i in range(2)
    ]


def _ratio(path_a, path_b):
    """Largest per-tensor max|a - b| / max|a| over two weights files."""
    a, b = read_weights_by_name(path_a), read_weights_by_name(path_b)
    assert sorted(a) == sorted(b)
    return max(
        float(np.abs(x - y).max() / max(np.abs(x).max(), 1e-12))
        for name in a
        for x, y in zip(a[name], b[name], strict=True)
    )


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_set):
    """Reference, wrong split, 2 workers, and 2 workers whose chief is killed then rerun."""
    tmp = tmp_path_factory.mktemp("distribute")
    (tmp / "scratch").mkdir()
    t0 = time.monotonic()
    common = ["--steps", STEPS, "--checkpoint_every", CHECKPOINT_EVERY]
    single = Proc(tmp / "single.log", ["train", tiny_set, tmp / "single", *common], _env(tmp))
    wrong = Proc(
        tmp / "wrong.log",
        ["train", tiny_set, tmp / "wrong", *common, "--wrong_split"],
        _env(tmp),
    )
    pair = _workers(tmp, "pair", tiny_set, tmp / "pair")
    killed_dir = tmp / "killed"
    killed = _workers(tmp, "killed", tiny_set, killed_dir, "--step_delay", "1")
    # kill -9 the chief once it has written a checkpoint mid-run
    ckpts = killed_dir / "level_5" / "checkpoints"
    deadline = time.monotonic() + 600
    while not (ckpts / "ckpt-4.index").exists() and killed[0].popen.poll() is None:
        assert time.monotonic() < deadline, killed[0].text()[-3000:]
        time.sleep(0.1)
    assert killed[0].popen.poll() is None, "the chief ended before it could be killed"
    os.kill(killed[0].popen.pid, signal.SIGKILL)
    killed[0].wait()
    # the surviving worker's collective fails once the chief is gone: it stops by itself
    t_kill = time.monotonic()
    survivor_rc = killed[1].wait(timeout=180)
    survivor_s = time.monotonic() - t_kill
    rerun = _workers(tmp, "rerun", tiny_set, killed_dir)
    procs = [single, wrong, *pair, *rerun]
    for p in procs:
        p.wait()
    return {
        "tmp": tmp,
        "single": single,
        "wrong": wrong,
        "pair": pair,
        "killed": killed,
        "rerun": rerun,
        "survivor": (survivor_rc, survivor_s),
        "seconds": time.monotonic() - t0,
    }


def _final(folder):
    return Path(folder) / "level_5" / "final.weights.h5"


def test_two_workers_equal_one_process_and_a_wrong_split_does_not(runs):
    single, wrong, pair = runs["single"], runs["wrong"], runs["pair"]
    assert single.result() == {"end_step": STEPS, "chief": True}
    assert wrong.result() == {"end_step": STEPS, "chief": True}
    assert [p.result() for p in pair] == [
        {"end_step": STEPS, "chief": True},
        {"end_step": STEPS, "chief": False},
    ]
    assert "training steps 0 -> 8 on 2 device(s)" in pair[0].text()
    tmp = runs["tmp"]
    good = _ratio(_final(tmp / "single"), _final(tmp / "pair"))
    bad = _ratio(_final(tmp / "single"), _final(tmp / "wrong"))
    print(f"\nmulti_worker vs one process: {good:.3g}; wrong split: {bad:.3g}")
    assert good <= 1e-3
    assert bad > 0.1  # the comparison can fail: a split that is not a partition is seen
    # only the chief wrote into --model_dir; the other worker's scratch folder is gone
    level = tmp / "pair" / "level_5"
    # (validation_cache.json: every worker's data check records the files that passed, atomically)
    written = sorted(os.listdir(level))
    assert written == [
        "checkpoints", "final.weights.h5", "logs", "train_stems.json", "validation_cache.json"
    ]  # fmt: skip
    assert not [n for n in os.listdir(tmp / "scratch") if n.startswith("pynet-bokeh-worker-")]


def test_killed_chief_resumes_from_its_last_checkpoint_when_both_workers_rerun(runs):
    killed, rerun = runs["killed"], runs["rerun"]
    assert killed[0].popen.returncode == -signal.SIGKILL
    rc, seconds = runs["survivor"]
    print(f"\nsurviving worker stopped with rc {rc} {seconds:.0f} s after the chief was killed")
    assert rc not in (0, None)
    assert [p.result() for p in rerun] == [
        {"end_step": STEPS, "chief": True},
        {"end_step": STEPS, "chief": False},
    ]
    text = rerun[0].text()
    resumed = int(text.split("at step ")[1].split(" ")[0])
    # killed as ckpt-4 was being written: it resumes from ckpt-4, or from ckpt-2 if the kill came
    # before the checkpoint list named ckpt-4; at most --checkpoint_every steps are lost
    assert "resuming from" in text and 4 - CHECKPOINT_EVERY <= resumed <= 4, text[-2000:]
    assert resumed % CHECKPOINT_EVERY == 0
    assert f"training steps {resumed} -> {STEPS}" in text
    # the resumed run lands where the uninterrupted one did (data position and Adam state)
    tmp = runs["tmp"]
    ratio = _ratio(_final(tmp / "single"), _final(tmp / "killed"))
    print(f"killed + resumed at step {resumed} vs one process: {ratio:.3g}")
    print(f"all multi-worker processes: {runs['seconds']:.0f} s")
    assert ratio <= 1e-3


def test_mirrored_step_on_two_logical_cpus_equals_one_device(tmp_path, tiny_set):
    res = subprocess.run(
        [sys.executable, HELPER, "mirrored", str(tiny_set), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=900,
        env=_env(tmp_path),
        cwd=REPO,
    )
    assert res.returncode == 0 and "RESULT " in res.stdout, res.stdout[-2000:] + res.stderr[-3000:]
    out = json.loads(res.stdout.split("RESULT ")[1].splitlines()[0])
    print(f"\nmirrored vs one device: {out}")
    assert out["replicas"] == [1, 2] and out["same_start"]
    assert out["loss"][1] == pytest.approx(out["loss"][0], rel=1e-5)
    assert out["tensors"] == 62 and out["determined_fraction"] > 0.9
    assert out["ratio"] <= 1e-4
    assert out["step_ratio"] > 10 * 1e-4  # the step moved the compared weights far more


def test_tpu_and_multi_worker_without_their_setup_stop_with_one_clear_message(monkeypatch):
    from pynet_bokeh.errors import UsageError
    from pynet_bokeh.training.trainer import TrainConfig, Trainer, make_strategy

    monkeypatch.delenv("TPU_NAME", raising=False)
    with pytest.raises(UsageError, match="--strategy tpu: no TPU found .*Cloud TPU VM or a Colab"):
        make_strategy("tpu")
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(UsageError, match="TF_CONFIG environment variable, which is not set"):
        make_strategy("multi_worker")
    monkeypatch.setenv("TF_CONFIG", '{"cluster": {}}')
    with pytest.raises(UsageError, match="TF_CONFIG must be JSON like"):
        make_strategy("multi_worker")
    config = TrainConfig("unused", steps=1, learning_rate=1e-3, strategy="tpu", run_eagerly=True)
    with pytest.raises(UsageError, match="compiled steps only"):
        Trainer(object(), config)
    with pytest.raises(UsageError, match="--strategy must be one of"):
        Trainer(object(), TrainConfig("unused", steps=1, learning_rate=1e-3, strategy="tpus"))


def test_input_pipeline_parts_for_tasks_with_and_without_shard(tiny_set, tmp_path):
    import tensorflow as tf

    from pynet_bokeh.training.pynet_task import PyNetLevelTask
    from pynet_bokeh.training.trainer import input_pipeline_part

    class Unshardable:  # a task whose dataset has no `shard`: the trainer slices its batches
        def dataset(self, split, seed, repeat, skip_batches=0):
            x = tf.reshape(tf.range(40, dtype=tf.float32), (10, 4))
            ds = tf.data.Dataset.from_tensor_slices(({"a": x}, x[:, :1])).batch(4, True)
            return ds.skip(skip_batches)

    pynet = PyNetLevelTask(5, tiny_set, tmp_path / "runs", 64, 4)
    pynet.preflight(resuming=True)
    for task in (Unshardable(), pynet):
        whole = list(task.dataset("train", seed=3, repeat=True, skip_batches=1).take(2))
        for pipelines, replicas in ((2, 2), (1, 2), (2, 4)):
            got = [
                list(
                    input_pipeline_part(
                        task, tf.distribute.InputContext(pipelines, i, replicas), 3, 1
                    ).take(2 * replicas // pipelines)
                )
                for i in range(pipelines)
            ]
            per_step = replicas // pipelines
            for k, (x, y) in enumerate(whole):
                parts = [b for p in got for b in p[k * per_step : (k + 1) * per_step]]
                assert len(parts) == replicas
                assert all(tf.nest.flatten(b)[1].shape[0] == 4 // replicas for b in parts)
                for j in range(len(tf.nest.flatten(x))):
                    np.testing.assert_array_equal(
                        np.concatenate([tf.nest.flatten(b)[j] for b in parts]),
                        tf.nest.flatten((x, y))[j],
                    )
    from pynet_bokeh.errors import UsageError

    with pytest.raises(UsageError, match="--batch_size 4 does not split evenly over 3 devices"):
        input_pipeline_part(pynet, tf.distribute.InputContext(1, 0, 3), 3)
    from pynet_bokeh.data.ebb import ebb_dataset

    with pytest.raises(ValueError, match="shard 1/3: .*batch_size .4. that count divides"):
        ebb_dataset(tiny_set, level=5, patch_size=64, batch_size=4, shard=(1, 3))
