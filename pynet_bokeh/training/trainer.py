"""A generic training loop: one `TrainingTask` (what to train, on what, with which losses) and one
`Trainer` (how: custom tf.function step, distribution, mixed precision, checkpoints, resume,
TensorBoard, progress, non-finite-loss guard).

PyNET's levels are the first task (`pynet_bokeh.training.pynet_task.PyNetLevelTask`). Another
model's stage plugs in by implementing the same protocol in `pynet_bokeh/training/<model>_task.py`
with a `task_from_flags(FLAGS) -> (task, TrainConfig)` that `train_level.py --model <model>
--stage ...` calls.

Work folder of a task (`TrainConfig.work_dir`):

    checkpoints/        tf.train checkpoints (weights by layer name, optimizer, step), last few
    logs/train, logs/eval   TensorBoard scalars and image rows
    final.weights.h5    the full model's weights when the run completes (next stage's start)
    train_stems.json    which images it trained on (tasks with `trained_on()`), so that
                        evaluate.py can warn when it scores them

Distribution (`TrainConfig.strategy`, see `make_strategy` and docs/distributed.md): the batch a
task's `dataset` yields is the global batch; each input pipeline (one per worker) reads its own
disjoint, deterministic part of every global batch, split evenly over its local replicas, so any
number of workers follows the trajectory of one device with the same batch and seed. Under
`multi_worker` every worker runs the same command with the same `work_dir`; only the chief writes
there (checkpoints, TensorBoard, final weights); the others save their checkpoints into a private
temporary folder (saving is a collective step) and delete it. Rerunning the same commands after
a crash resumes from the chief's last checkpoint.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import os
import shutil
import sys
import tempfile
import time
from typing import Protocol, runtime_checkable

import keras
import numpy as np
import tensorflow as tf

from pynet_bokeh.errors import UsageError
from pynet_bokeh.files import TMP_PREFIX, check_writable, remove_stale_temporaries
from pynet_bokeh.training import checkpointing, summaries

STRATEGIES = ("default", "mirrored", "multi_worker", "tpu")
# What a run killed mid-save leaves: CheckpointManager's `ckpt-N_temp/` folders (written, then
# renamed) and atomic_path's `.tmp-*` files.
STALE_CHECKPOINT_PATTERNS = ("ckpt-*_temp", f"{TMP_PREFIX}*")


@runtime_checkable
class TrainingTask(Protocol):
    """What one training stage needs to say; `Trainer` does the rest.

    `build_model` returns the full model (all its weights are checkpointed and saved at the end);
    `trainable_model(model)` the sub-model this stage trains (sharing layers with it).
    `preflight(resuming)` checks inputs before anything heavy starts (raise with a clear
    message); `initialize(model)` loads the starting weights of a fresh run and returns a line
    saying what it loaded (it is not called when resuming from a checkpoint).
    `dataset(split, seed, repeat, skip_batches)` yields (inputs, targets) batches, the same ones
    for the same seed, after skipping `skip_batches` (a resumed run continues where the killed
    one stopped). A task whose `dataset` also takes `shard=(index, count)` yields part `index`
    of `count` equal, contiguous parts of each of those batches, loading only that part (the
    trainer slices the full batches of a task without it); `loss_terms` returns the
    weighted loss terms (float32 scalars, summed into the loss); `eval_metrics` returns numbers
    for a batch; `image_rows` NHWC float images in [0, 1] for TensorBoard.
    """

    name: str

    def preflight(self, resuming: bool) -> None: ...

    def build_model(self) -> keras.Model: ...

    def trainable_model(self, model: keras.Model) -> keras.Model: ...

    def initialize(self, model: keras.Model) -> str: ...

    def dataset(
        self, split: str, seed: int | None, repeat: bool, skip_batches: int = 0
    ) -> tf.data.Dataset: ...

    def loss_terms(self, inputs, targets, outputs) -> dict: ...

    def eval_metrics(self, inputs, targets, outputs) -> dict: ...

    def image_rows(self, inputs, targets, outputs): ...


@dataclasses.dataclass
class TrainConfig:
    """How to train: step counts, optimiser, intervals, distribution, where to write."""

    work_dir: str
    steps: int
    learning_rate: float
    checkpoint_every: int = 500
    eval_every: int = 1000
    log_every: int = 10
    keep_checkpoints: int = 3
    eval_batches: int = 8
    seed: int = 0
    strategy: str = "default"
    mixed_precision: bool = False
    run_eagerly: bool = False  # no tf.function: slower steps, no tracing (debugging, few steps)
    verbose: bool = True


@dataclasses.dataclass
class TrainResult:
    start_step: int
    end_step: int
    first_loss: float
    last_loss: float
    steps_per_second: float
    final_weights: str | None
    eval_metrics: dict


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


_STRATEGY_CACHE: dict = {}


def make_strategy(name: str) -> tf.distribute.Strategy:
    """The `tf.distribute` strategy called `name` (one of STRATEGIES).

    "default": one device. "mirrored": all local GPUs, else all logical CPU devices.
    "multi_worker": `MultiWorkerMirroredStrategy`, cluster and task from the `TF_CONFIG`
    environment variable; it must be made before TensorFlow runs anything, so a program calls
    this first. "tpu": `TPUStrategy` with the TPU the environment names (Colab, Cloud TPU VM);
    stops with `UsageError` where there is none. multi_worker and tpu are made once per process.
    """
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        devices = [d.name for d in tf.config.list_logical_devices("GPU")]
        devices = devices or [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices=devices)
    if name in _STRATEGY_CACHE:
        return _STRATEGY_CACHE[name]
    if name == "multi_worker":
        strategy = _multi_worker_strategy()
    elif name == "tpu":
        strategy = _tpu_strategy()
    else:
        raise UsageError(f"--strategy must be one of {', '.join(STRATEGIES)}, got {name!r}")
    _STRATEGY_CACHE[name] = strategy
    return strategy


def _multi_worker_strategy():
    import json

    raw = os.environ.get("TF_CONFIG")
    if not raw:
        raise UsageError(
            "--strategy multi_worker reads the cluster from the TF_CONFIG environment variable, "
            "which is not set; see docs/distributed.md for what to put in it on each host"
        )
    try:
        tf_config = json.loads(raw)
        workers = tf_config["cluster"]["worker"]
        int(tf_config["task"]["index"])
    except (ValueError, KeyError, TypeError):
        raise UsageError(
            'TF_CONFIG must be JSON like {"cluster": {"worker": ["host1:port", "host2:port"]}, '
            f'"task": {{"type": "worker", "index": 0}}}}; got {raw!r}'
        ) from None
    if not workers:
        raise UsageError("TF_CONFIG lists no workers under cluster.worker")
    options = tf.distribute.experimental.CommunicationOptions(
        implementation=tf.distribute.experimental.CommunicationImplementation.AUTO
    )
    try:
        return tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
    except RuntimeError as err:
        raise UsageError(
            f"--strategy multi_worker must be set up before TensorFlow runs anything ({err}); "
            "call pynet_bokeh.training.trainer.make_strategy('multi_worker') first"
        ) from None


def _tpu_strategy():
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except (ValueError, RuntimeError, tf.errors.OpError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UsageError(
            f"--strategy tpu: no TPU found ({first}); run on a Cloud TPU VM or a Colab TPU "
            "runtime, or use --strategy default / mirrored / multi_worker"
        ) from None
    return tf.distribute.TPUStrategy(resolver)


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes checkpoints, TensorBoard records and final weights."""
    return bool(strategy.extended.should_checkpoint)


def input_pipeline_part(
    task: TrainingTask, ctx: tf.distribute.InputContext, seed: int | None, start_step: int = 0
) -> tf.data.Dataset:
    """Input pipeline `ctx.input_pipeline_id`'s part of the task's training batches: part i of
    n contiguous, equal parts of every global batch, in per-replica batches (its local
    replicas take consecutive ones), from global batch `start_step` on."""
    count, index = ctx.num_input_pipelines, ctx.input_pipeline_id
    local = ctx.num_replicas_in_sync // count
    shard = count > 1 and "shard" in inspect.signature(task.dataset).parameters
    kwargs = {"shard": (index, count)} if shard else {}
    data = task.dataset("train", seed=seed, repeat=True, skip_batches=start_step, **kwargs)
    batch = tf.nest.flatten(data.element_spec)[0].shape[0]
    if shard and batch is not None:
        batch *= count
    if batch is None or batch % ctx.num_replicas_in_sync:
        raise UsageError(
            f"--batch_size {batch} does not split evenly over {ctx.num_replicas_in_sync} "
            f"devices ({count} worker(s)); use a multiple of {ctx.num_replicas_in_sync}"
        )
    part = batch // count
    if count > 1 and not shard:
        lo = index * part
        data = data.map(lambda *e: tf.nest.map_structure(lambda t: t[lo : lo + part], e))
    if local > 1:
        data = data.rebatch(part // local, drop_remainder=True)
    return data


class Trainer:
    """Trains `task` as `config` says. `run()` resumes from the latest checkpoint if there is one."""

    def __init__(
        self,
        task: TrainingTask,
        config: TrainConfig,
        strategy: tf.distribute.Strategy | None = None,
    ):
        """`strategy`: an already made strategy (else `make_strategy(config.strategy)`, which
        for multi_worker and tpu happens here, before the task's checks run TensorFlow)."""
        for name in ("steps", "checkpoint_every", "eval_every", "log_every", "keep_checkpoints"):
            if getattr(config, name) <= 0:
                raise UsageError(f"--{name} must be positive, got {getattr(config, name)}")
        if not (math.isfinite(config.learning_rate) and config.learning_rate > 0):
            raise UsageError(
                f"--learning_rate must be a positive number, got {config.learning_rate}"
            )
        self.task = task
        self.config = config
        self.ckpt_dir = os.path.join(config.work_dir, checkpointing.CHECKPOINT_DIR)
        self.final_path = os.path.join(config.work_dir, checkpointing.FINAL_WEIGHTS)
        if config.strategy not in STRATEGIES:
            raise UsageError(
                f"--strategy must be one of {', '.join(STRATEGIES)}, got {config.strategy!r}"
            )
        if config.strategy == "tpu" and config.run_eagerly:
            raise UsageError("--strategy tpu runs compiled steps only; drop --run_eagerly")
        if strategy is None and config.strategy in ("multi_worker", "tpu"):
            strategy = make_strategy(config.strategy)
        self._given_strategy = strategy
        self._scratch = None  # a non-chief worker's private folder for checkpoints
        self._built = False

    def log(self, msg: str) -> None:
        if self.config.verbose:
            print(msg, flush=True)

    def _record_trained_stems(self):
        """Writes train_stems.json for tasks that say what they train on (`trained_on()` ->
        (dataset_dir, stems) or None)."""
        trained_on = getattr(self.task, "trained_on", None)
        found = trained_on() if callable(trained_on) else None
        if found:
            from pynet_bokeh.data.splits import write_trained_stems

            write_trained_stems(self.config.work_dir, *found)

    # ----------------------------------------------------------------- setup
    def setup(self) -> int:
        """Builds model and optimiser, then resumes or initialises. Returns the start step."""
        if self._built:
            return int(self.step.numpy())
        self.check_outputs()
        resuming = tf.train.latest_checkpoint(self.ckpt_dir) is not None
        self.task.preflight(resuming)
        self.strategy = self._given_strategy or make_strategy(self.config.strategy)
        self.is_chief = is_chief(self.strategy)
        if self.is_chief:
            self._record_trained_stems()
        tpu = self.config.strategy == "tpu"
        previous_policy = keras.config.dtype_policy()
        if self.config.mixed_precision:
            # TPUs compute in bfloat16, whose range needs no loss scaling.
            keras.config.set_dtype_policy("mixed_bfloat16" if tpu else "mixed_float16")
        try:
            with self.strategy.scope():
                self.model = self.task.build_model()
                self.train_model = self.task.trainable_model(self.model)
                optimizer = keras.optimizers.Adam(self.config.learning_rate)
                if self.config.mixed_precision and not tpu:
                    optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
                self.optimizer = optimizer
                self.optimizer.build(self.train_model.trainable_variables)
                self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        finally:
            keras.config.set_dtype_policy(previous_policy)
        save_dir = self.ckpt_dir
        if not self.is_chief:
            # Every worker takes part in a save; only the chief's copy is kept.
            self._scratch = tempfile.mkdtemp(prefix="pynet-bokeh-worker-")
            save_dir = os.path.join(self._scratch, checkpointing.CHECKPOINT_DIR)
        self.ckpt, self.manager = checkpointing.training_checkpoint(
            self.model, self.optimizer, self.step, save_dir, self.config.keep_checkpoints
        )
        latest = tf.train.latest_checkpoint(self.ckpt_dir)
        if latest:
            self.ckpt.restore(latest).assert_existing_objects_matched()
            restored_lr = float(self.optimizer.learning_rate.numpy())
            if not math.isclose(restored_lr, self.config.learning_rate, rel_tol=1e-6):
                # The checkpoint holds the old rate; the command line wins.
                self.optimizer.learning_rate = self.config.learning_rate
                self.log(f"learning rate {restored_lr:g} -> {self.config.learning_rate:g}")
            self.log(
                f"{self.task.name}: resuming from {latest} at step {int(self.step.numpy())} "
                f"(optimizer iterations {int(self.optimizer.iterations.numpy())})"
            )
        else:
            self.log(f"{self.task.name}: starting: {self.task.initialize(self.model)}")
        self._last_saved = int(self.step.numpy()) if latest else None
        predict = self._predict_on_replica if tpu else self._predict_raw
        if self.config.run_eagerly:
            self._step_fn, self._predict_fn = self._distributed_step, predict
        else:
            self._step_fn = tf.function(self._distributed_step)
            self._predict_fn = tf.function(predict, reduce_retracing=True)
        self._built = True
        return int(self.step.numpy())

    def check_outputs(self) -> None:
        """Before any work: every output folder is writable (else FolderNotWritableError
        naming it), and what a run killed mid-save left there is removed."""
        logs = os.path.join(self.config.work_dir, "logs")
        check_writable(self.config.work_dir, "model folder")
        check_writable(self.ckpt_dir, "checkpoint folder")
        for sub in ("train", "eval"):
            check_writable(os.path.join(logs, sub), "TensorBoard log folder")
        removed = remove_stale_temporaries(self.ckpt_dir, STALE_CHECKPOINT_PATTERNS)
        removed += remove_stale_temporaries(self.config.work_dir)
        if removed:
            names = ", ".join(p.name for p in removed)
            self.log(f"removed {len(removed)} left over by an interrupted save: {names}")

    # ----------------------------------------------------------------- steps
    def _replica_step(self, inputs, targets):
        replicas = self.strategy.num_replicas_in_sync
        variables = self.train_model.trainable_variables
        with tf.GradientTape() as tape:
            outputs = self.train_model(inputs, training=True)
            # Losses are computed in float32 whatever the compute dtype (mixed precision).
            outputs = tf.nest.map_structure(lambda t: tf.cast(t, tf.float32), outputs)
            terms = {
                k: tf.cast(v, tf.float32)
                for k, v in self.task.loss_terms(inputs, targets, outputs).items()
            }
            loss = tf.add_n(list(terms.values()))
            # Gradients are summed over replicas, so each replica contributes its share.
            scaled = loss / replicas
            if self.config.mixed_precision:
                scaled = self.optimizer.scale_loss(scaled)
        grads = tape.gradient(scaled, variables)
        self.optimizer.apply_gradients(zip(grads, variables, strict=True))
        out = {"loss": loss / replicas}
        out.update({k: v / replicas for k, v in terms.items()})
        return out

    def _distributed_step(self, inputs, targets):
        per_replica = self.strategy.run(self._replica_step, args=(inputs, targets))
        return {
            k: self.strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None)
            for k, v in per_replica.items()
        }

    def _predict_raw(self, inputs):
        return self.train_model(inputs, training=False)

    def _predict_on_replica(self, inputs):
        # On a TPU the model runs on a replica; the host only feeds it.
        out = self.strategy.run(self._predict_raw, args=(inputs,))
        return self.strategy.experimental_local_results(out)[0]

    def save_checkpoint(self, step: int) -> None:
        """Saves checkpoint `step` (every worker calls it; only the chief's copy is kept)."""
        self.manager.save(checkpoint_number=step)
        self._last_saved = step
        if self._scratch is not None:
            shutil.rmtree(os.path.join(self._scratch, checkpointing.CHECKPOINT_DIR), True)

    def _cleanup_scratch(self) -> None:
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None

    def distributed_dataset(self, start_step: int = 0):
        """The training data for `strategy.run`: each input pipeline's part of each global batch,
        split into per-replica batches, starting at global batch `start_step`."""
        task, seed = self.task, self.config.seed
        return self.strategy.distribute_datasets_from_function(
            lambda ctx: input_pipeline_part(task, ctx, seed, start_step)
        )

    def train_step(self, inputs, targets) -> dict:
        """One optimiser step on a batch (a per-replica value under mirrored). Returns floats."""
        self.setup()
        values = self._step_fn(inputs, targets)
        return {k: float(v.numpy()) for k, v in values.items()}

    def predict(self, inputs):
        self.setup()
        return tf.cast(self._predict_fn(inputs), tf.float32)

    # ------------------------------------------------------------------- eval
    def evaluate(self, writer=None, step=None) -> dict:
        """Mean of the task's metrics over up to `eval_batches` test batches (0: none); logs them.
        Only the chief evaluates (the others return {})."""
        self.setup()
        if self.config.eval_batches <= 0 or not self.is_chief:
            return {}
        sums, count, first = {}, 0, None
        data = self.task.dataset("test", seed=self.config.seed, repeat=False)
        for inputs, targets in data.take(self.config.eval_batches):
            outputs = self.predict(inputs)
            for k, v in self.task.eval_metrics(inputs, targets, outputs).items():
                sums[k] = sums.get(k, 0.0) + float(v)
            count += 1
            if first is None:
                first = self.task.image_rows(inputs, targets, outputs)
        metrics = {k: v / count for k, v in sums.items()} if count else {}
        if writer is not None and count:
            with writer.as_default():
                for k, v in metrics.items():
                    summaries.scalar(k, v, step=step)
                summaries.image("input | output | target", first, step=step, max_outputs=4)
            writer.flush()
        return metrics

    # -------------------------------------------------------------------- run
    def run(self) -> TrainResult:
        """Trains to `config.steps`, checkpointing, evaluating and logging; saves final weights."""
        start = self.setup()
        try:
            return self._run(start)
        finally:
            self._cleanup_scratch()

    def _run(self, start: int) -> TrainResult:
        cfg = self.config
        logs = os.path.join(cfg.work_dir, "logs")
        if self.is_chief:
            train_writer = tf.summary.create_file_writer(os.path.join(logs, "train"))
            eval_writer = tf.summary.create_file_writer(os.path.join(logs, "eval"))
        else:
            train_writer = eval_writer = tf.summary.create_noop_writer()
        if start >= cfg.steps:
            self.log(f"{self.task.name}: already at step {start} of {cfg.steps}; nothing to train")
        else:
            self.log(
                f"{self.task.name}: training steps {start} -> {cfg.steps} on "
                f"{self.strategy.num_replicas_in_sync} device(s)"
            )
        iterator = iter(self.distributed_dataset(start))
        tty = sys.stdout.isatty()
        bar = keras.utils.Progbar(
            max(cfg.steps - start, 1),
            stateful_metrics=None,
            interval=0.2 if tty else 15.0,
            verbose=1 if cfg.verbose else 0,
            unit_name="step",
        )
        first_loss = last_loss = math.nan
        window, t0 = {}, time.time()
        step = start
        while step < cfg.steps:
            inputs, targets = next(iterator)
            values = self.train_step(inputs, targets)
            if not all(math.isfinite(v) for v in values.values()):
                self._stop_non_finite(step + 1, values)
            step = int(self.step.assign_add(1).numpy())
            last_loss = values["loss"]
            if math.isnan(first_loss):
                first_loss = last_loss
            for k, v in values.items():
                window.setdefault(k, []).append(v)
            if step % cfg.log_every == 0 or step == cfg.steps:
                rate = (step - start) / max(time.time() - t0, 1e-9)
                with train_writer.as_default():
                    for k, v in window.items():
                        summaries.scalar(k, float(np.mean(v)), step=step)
                    summaries.scalar("steps_per_second", rate, step=step)
                window = {}
            bar.update(step - start, [(k, v) for k, v in values.items()])
            if step % cfg.checkpoint_every == 0:
                self.save_checkpoint(step)
            if step % cfg.eval_every == 0 and step < cfg.steps:
                self._log_eval(eval_writer, step)
        elapsed = time.time() - t0
        if self._last_saved != step:
            self.save_checkpoint(step)
        metrics = self._log_eval(eval_writer, step)
        if self.is_chief:
            checkpointing.save_weights(self.model, self.final_path)
            self.log(f"{self.task.name}: step {step}; final weights in {self.final_path}")
        train_writer.flush()
        return TrainResult(
            start_step=start,
            end_step=step,
            first_loss=first_loss,
            last_loss=last_loss,
            steps_per_second=(step - start) / max(elapsed, 1e-9),
            final_weights=self.final_path if self.is_chief else None,
            eval_metrics=metrics,
        )

    def _log_eval(self, writer, step) -> dict:
        metrics = self.evaluate(writer, step)
        if metrics:
            text = ", ".join(f"{k} {v:.4f}" for k, v in metrics.items())
            self.log(f"\n{self.task.name}: step {step} test: {text}")
        return metrics

    def _stop_non_finite(self, step, values):
        latest = tf.train.latest_checkpoint(self.ckpt_dir)
        kept = (
            f"the last good checkpoint {latest} is kept; rerun the same command to resume from it"
            if latest
            else "no checkpoint was written before it"
        )
        terms = ", ".join(f"{k}={v:g}" for k, v in values.items())
        raise NonFiniteLossError(
            f"{self.task.name}: non-finite loss at step {step} ({terms}); training stopped and "
            f"nothing was saved for this step: {kept}. Try a lower --learning_rate (now "
            f"{self.config.learning_rate:g}) and check the data."
        )
