"""Triplet training of the embedding network, resumable.

    from facelib.training.train import TrainConfig, train
    folder = train(TrainConfig.preset("cpu", epochs=20), run_name="my-run")
    facelib train --preset cpu [--resume] [--epochs 20 --mining batch_semihard ...]

Every epoch: Keras progress bar, validation verification AUC on held-out training
identities, a row in history.csv and TensorBoard scalars in logs/, then a backup of the full training state, so
`--resume` continues from the last complete epoch after a crash or kill, with the
data stream at the step it had reached. The final model.keras is written atomically,
with card.json beside it; the backup is removed only after both exist.

The run's pieces, each in its own module: run_folder (what an earlier attempt left,
the backup, history.csv), budget (the plan and its calibration), distribution
(strategies and the Keras multi-worker workaround), assembly (model, losses,
optimizer, schedule), training_callbacks and tensorboard_logs (the scalars, and the
validation people's embedding projector written at the end).
"""

from __future__ import annotations

import functools
import hashlib
import subprocess
import time
from dataclasses import asdict
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from facelib.core import config, machine
from facelib.core.errors import FacelibError
from facelib.core.files import write_json_atomic
from facelib.core.machine import resolve_precision
from facelib.data.pipeline import training_dataset
from facelib.data.sources import bare_name
from facelib.recognition.calibration import PeopleCalibration, faces_calibration
from facelib.recognition.card import ModelCard
from facelib.recognition.model import save_model_folder
from facelib.training.assembly import (
    Assembled,
    PlannedCosineDecay,
    assemble,
    in_float32,
    restore,
    with_targets,
)
from facelib.training.budget import (
    CALIBRATION_STEPS,
    PLAN,
    Plan,
    calibrate_speed,
    plan_from_speed,
)
from facelib.training.distribution import (
    check_replicas,
    describe,
    fit_across_workers,
    save_on_worker,
    several_workers,
    sharded,
    strategy,
)
from facelib.training.run_folder import (
    RunFolder,
    check_finished_settings,
    history_summary,
    is_finished,
    open_run,
    remove_backup,
)
from facelib.training.tensorboard_logs import projector_pictures, write_projector
from facelib.training.training_callbacks import (
    ValidationAUC,
    training_callbacks,
)
from facelib.training.training_config import (
    TrainConfig,
)
from facelib.training.training_data import (
    Faces,
    crop_policy,
    crop_record,
    gather,
    parent_card,
    parent_record,
)

# The names that notebooks, bench/, the CLI and tests take from facelib.training.train; the
# pieces live in run_folder, budget, distribution, assembly and training_callbacks.

# ----------------------------------------------------------------------- precision

KERAS_POLICIES = {"float32": "float32", "bfloat16": "mixed_bfloat16", "float16": "mixed_float16"}


def gpu_present() -> bool:
    return bool(tf.config.list_physical_devices("GPU"))


def auto_precision() -> str:
    """What precision auto picks on this machine."""
    return resolve_precision("auto", machine.read_cpu(), gpu_present())[0]


# ----------------------------------------------------------------------- training


def train_or_resume(cfg: TrainConfig, run_name: str, **kwargs) -> Path:
    """What re-running a notebook should do: return a finished run, resume an
    interrupted one, or start a new one."""
    folder = config.models_dir() / run_name
    if is_finished(folder):
        check_finished_settings(folder, run_name, cfg, auto_precision)
        if (folder / "backup").exists():
            remove_backup(folder / "backup")  # killed after saving, before this clean-up
        print(f"{run_name} is already trained: {folder}")
        return folder
    return train(cfg, run_name, resume=True, **kwargs)


def train(
    cfg: TrainConfig,
    run_name: str,
    resume: bool = False,
    extra_callbacks: list[keras.callbacks.Callback] | None = None,
    verbose: int | str = "auto",
    data: tf.data.Dataset | None = None,
) -> Path:
    """Train and save `models/<run_name>/`; returns that folder. `data` replaces the
    P×K stream (an infinite dataset of (images, labels) batches), e.g. in tests.
    On a non-chief worker of a multi-worker run nothing is written there (the chief
    writes it, maybe on another machine) and the chief's folder is returned.

    Training sets Keras's global dtype policy (for precision bfloat16 or float16); it is
    restored afterwards, so later code in the process (a notebook) runs as before."""
    policy_before = keras.mixed_precision.global_policy()
    try:
        return _train(cfg, run_name, resume, extra_callbacks, verbose, data)
    finally:
        keras.mixed_precision.set_global_policy(policy_before)


def _train(
    cfg: TrainConfig,
    run_name: str,
    resume: bool,
    extra_callbacks: list[keras.callbacks.Callback] | None,
    verbose: int | str,
    data: tf.data.Dataset | None,
) -> Path:
    dist = strategy()  # first: a multi-worker strategy must exist before any TF op runs
    check_replicas(cfg, dist.num_replicas_in_sync, own_data=data is not None)
    run = open_run(run_name, cfg, resume, dist.extended.should_checkpoint, auto_precision)
    # Refused before anything is written: missing crops, a precision this CPU only emulates.
    crops_root = _crops_root(cfg) if cfg.lfw_people else None
    parent = parent_card(cfg)  # a fine-tune's model, refused if it does not fit
    cpu = machine.read_cpu()
    precision, why = resolve_precision(cfg.precision, cpu, gpu_present())
    plan = run.begin(cfg)

    faces = gather(cfg, crops_root, run.path, run.chief, resumed=run.found is not None)
    for message in faces.warnings:
        print(f"warning: {message}")
    # Set every time: the policy is global, and an earlier run in this process may have changed it.
    keras.mixed_precision.set_global_policy(KERAS_POLICIES[precision])
    print(f"machine: {cpu.describe()}; precision {precision} ({why}); {machine.math_state().describe()}")
    keras.utils.set_random_seed(cfg.seed)
    print(f"training {run_name}: {faces.describe(cfg)}; {describe(dist)}")
    # Without a plan yet the schedule's length is set after calibration.
    net = assemble(cfg, len(faces.train.identities), plan.total_steps if plan else 1, dist)
    if run.found:
        restore(net.model, run.found.weights, dist)
        backup = run.found.weights.name
        print(f"resuming {run_name} after epoch {run.done} of {plan.epochs} (backup {backup})")

    stream = functools.partial(_stream, cfg, faces.train, data)
    if plan is None:  # a budget, not yet planned: time the compiled step on the real stream
        plan = _plan_budget(cfg, run, net, stream, dist, cpu, precision)
    elif plan.budget_minutes is not None:
        print(f"{run_name}: keeping the plan it started with ({PLAN})")
    print(plan.describe(cfg.batch_images), flush=True)
    batches = stream(run.done * plan.steps_per_epoch)
    if several_workers(dist):
        fit_across_workers(net.model, dist, batches.element_spec)
    validation = ValidationAUC(faces.validation.paths, *faces.pairs, cfg.input_size)
    validation.embedding_model = net.embedding_model
    callbacks = training_callbacks(
        run, validation, plan, cpu, precision, cfg.batch_images, extra_callbacks, cfg.keep_epochs
    )
    started = time.time()
    steps_run = _fit(net, batches, run, plan, callbacks, verbose)

    # What is saved and scored: the embedding in float32 (a classifier head was for training only).
    model = in_float32(net.embedding_model, cfg, dist)
    threshold = validation.threshold(model)  # on every worker: predict runs on them all
    # The validation people's impostor curve and confidence mapping, on every worker too.
    measured = _validation_calibration(model, faces, cfg, run_name)
    projected = projector_pictures(model, faces.validation.paths, faces.validation.people, cfg.input_size)
    if not run.chief:
        save_on_worker(model, run_name)
        return run.path
    card = _card(run, cfg, threshold, crops_root, faces, started, cpu, precision, plan, steps_run)
    if parent is not None:
        card.parent_model = parent_record(*parent, cfg)
    if measured is not None:
        measured.store_in(card)
    save_model_folder(run.path, model, card)
    write_projector(run.path, projected)
    remove_backup(run.backup)  # only now: until model.keras and card.json exist, it is the run
    return run.path


def _crops_root(cfg: TrainConfig) -> Path:
    """The crop folder training reads; a run folder is no place to find out it is missing."""
    crops_root = config.processed_dir() / cfg.crops
    if not (crops_root / "manifest.csv").is_file():
        raise FacelibError(_missing_crops_message(crops_root))
    return crops_root


def _fit(net: Assembled, batches, run: RunFolder, plan: Plan, callbacks, verbose: int | str) -> int:
    """Train the epochs the plan has left; the optimizer's step count, resumed ones too."""
    if run.done < plan.epochs:
        net.model.fit(
            batches,
            epochs=plan.epochs,
            initial_epoch=run.done,
            steps_per_epoch=plan.steps_per_epoch,
            callbacks=callbacks,
            verbose=verbose,
            shuffle=False,  # the stream is already shuffled, deterministically
        )
    else:
        print(f"{run.name}: all {plan.epochs} epochs were trained before it stopped; saving the model")
    if net.model.stop_training and not np.isfinite(net.embedding_model.get_weights()[-1]).all():
        raise FacelibError(
            f"training of {run.name} diverged (NaN loss); lower the learning rate and start a new run"
        )
    return int(net.model.optimizer.iterations.numpy())


def _validation_calibration(model, faces: Faces, cfg: TrainConfig, run_name: str) -> PeopleCalibration | None:
    """The validation people's impostor curve and confidence mapping, stored in the card
    so that identification and verify's confidence work without `facelib evaluate`;
    None (said) when too few of them have pictures."""
    where = ", ".join(r["crops"] for r in faces.records)
    try:
        measured = faces_calibration(model, faces.validation, cfg.input_size, where)
    except FacelibError as exc:
        print(f"{run_name}: no open-set curve nor confidence ({exc})")
        return None
    if measured.confidence is None:
        print(f"{run_name}: {measured.confidence_note}")
    return measured


def _stream(cfg: TrainConfig, faces, data: tf.data.Dataset | None, start_step: int) -> tf.data.Dataset:
    """The training batches from `start_step` on, as the model and the strategy take them."""
    batches = data or training_dataset(
        faces,
        cfg.mining,
        cfg.p,
        cfg.k,
        cfg.input_size,
        cfg.seed,
        start_step=start_step,
        augmentation=cfg.augmentation,
    )
    return sharded(with_targets(batches, cfg))


def _plan_budget(
    cfg: TrainConfig, run: RunFolder, net: Assembled, stream, dist, cpu: machine.Cpu, precision: str
) -> Plan:
    """The steps `cfg.minutes` buy, timed on the compiled step, set as the schedule's
    length and stored in plan.json before the first epoch."""
    print(f"timing {CALIBRATION_STEPS} steps to plan {cfg.minutes:g} min of training …", flush=True)
    speed = calibrate_speed(net.model, stream(0), cfg.batch_images, dist)
    plan = plan_from_speed(cfg, speed, machine=cpu.model, precision=precision, onednn=machine.onednn_state())
    if isinstance(net.schedule, PlannedCosineDecay):
        net.schedule.set_total(plan.total_steps)
    if run.chief:
        write_json_atomic(run.path / PLAN, asdict(plan))
    return plan


def _missing_crops_message(crops_root: Path) -> str:
    """No crops where the config says: name the crop folders that do exist (made with
    other settings, e.g. --detector yunet), or say how to make them."""
    parent = crops_root.parent
    found = (
        sorted(p.name for p in parent.iterdir() if (p / "manifest.csv").is_file()) if parent.is_dir() else []
    )
    if not found:
        return f"no face crops in {crops_root}: run `facelib preprocess` first"
    return (
        f"no face crops in {crops_root}; crop folders there: {', '.join(found)}: "
        "pass --crops NAME (or --set crops=NAME) to train on one of them, "
        "or run `facelib preprocess` with the settings that make this one"
    )


# ----------------------------------------------------------------------- the card


def _card(
    run: RunFolder,
    cfg: TrainConfig,
    threshold: float,
    crops_root: Path | None,
    faces: Faces,
    started: float,
    cpu: machine.Cpu,
    precision: str,
    plan: Plan,
    steps_run: int,
) -> ModelCard:
    """The model card: what the model is, what it was trained on, and where and how."""
    return ModelCard(
        name=run.name,
        input_size=cfg.input_size,
        embedding_dim=cfg.embedding_dim,
        validation_threshold=threshold,
        crop_settings=crop_record(crop_policy(cfg), crops_root),
        created=time.strftime("%Y-%m-%dT%H:%M:%S"),
        config=asdict(cfg),
        data_manifest_sha256=_sha256_file(crops_root / "manifest.csv") if crops_root else None,
        # By their own names (a folder's people without its prefix): `facelib evaluate`
        # leaves out the LFW pairs of anyone named here.
        training_identities=[bare_name(n) for n in faces.all_train.identities],
        validation_identities=[bare_name(n) for n in faces.validation.identities],
        data_sources=list(faces.records),
        training_images=faces.train.images,
        git_commit=_git_commit(),
        history=history_summary(run.history_csv),
        train_seconds_last_session=round(time.time() - started, 1),
        # Where and how the last session trained (history.csv has each epoch's).
        machine={"cpu": cpu.model, "arch": cpu.arch, "flags": list(cpu.flags), "cores": cpu.cores},
        precision=precision,
        onednn=machine.onednn_state(),
        plan={**asdict(plan), "total_steps": plan.total_steps},
        steps_run=steps_run,
        keras=keras.__version__,
        tensorflow=tf.__version__,
    )


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=config.PROJECT_ROOT, capture_output=True, text=True, timeout=5
        )
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def _sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
