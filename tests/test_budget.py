"""Training by time budget: the run times its own steps, fixes their number, stores the
plan, stops on it, and a resumed run keeps the plan and the schedule. No timing is
asserted: only that the run does what its own plan says."""

from __future__ import annotations

import csv
import dataclasses
import json

import keras
import numpy as np
import pytest

import facelib.training.train as train_module
from facelib.core import config, machine
from facelib.core.errors import ConfigError
from facelib.recognition.card import ModelCard
from facelib.training import assembly, budget, run_folder
from facelib.training.assembly import PlannedCosineDecay
from facelib.training.budget import PLAN, read_plan
from facelib.training.train import train, train_or_resume
from facelib.training.training_config import TrainConfig

pytestmark = pytest.mark.tensorflow  # facelib's imports here load TensorFlow


@pytest.mark.parametrize("warmup, total", [(0, 6), (3, 40), (200, 4500), (200, 250), (50, 1)])
def test_the_planned_schedule_is_kerass_cosine_decay_with_warmup(warmup, total):
    """The schedule whose length is set after compiling equals the CosineDecay that
    facelib used before, for the same total steps."""
    planned = PlannedCosineDecay(2e-3, warmup, total_steps=1)
    planned.set_total(total)
    used_warmup = min(warmup, total // 2)
    reference = keras.optimizers.schedules.CosineDecay(
        0.0 if used_warmup else 2e-3,
        decay_steps=max(1, total - used_warmup),
        warmup_target=2e-3 if used_warmup else None,
        warmup_steps=used_warmup,
        alpha=0.01,
    )
    for step in sorted({0, 1, used_warmup, total // 3, total - 1, total, total + 5}):
        assert float(planned(step)) == pytest.approx(float(reference(step)), rel=1e-5, abs=1e-9), step


class LearningRates(keras.callbacks.Callback):
    """Records the optimizer's step and learning rate at each epoch's end."""

    def __init__(self, stop_after_epoch: int | None = None):
        super().__init__()
        self.seen, self.stop_after_epoch = [], stop_after_epoch

    def on_epoch_end(self, epoch, logs=None):
        optimizer = self.model.optimizer
        self.seen.append((int(optimizer.iterations.numpy()), float(np.asarray(optimizer.learning_rate))))

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.stop_after_epoch:  # the backup of the epoch before is complete
            raise KeyboardInterrupt


def _expected_rate(cfg: TrainConfig, total: int, step: int) -> float:
    warmup = min(cfg.warmup_steps, total // 2)
    return float(
        keras.optimizers.schedules.CosineDecay(
            0.0 if warmup else cfg.learning_rate,
            decay_steps=max(1, total - warmup),
            warmup_target=cfg.learning_rate if warmup else None,
            warmup_steps=warmup,
            alpha=0.01,
        )(step)
    )


def test_a_budget_run_stops_on_its_plan_and_resumes_it(smoke_crops, monkeypatch, capsys):
    monkeypatch.setattr(train_module, "gpu_present", lambda: False)  # the CPU's precision
    cfg = TrainConfig.preset("smoke", settings={"minutes": 0.05, "warmup_steps": 4})
    run = "budget-smoke"
    rates = LearningRates(stop_after_epoch=1)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, run, extra_callbacks=[rates], verbose=0)
    out = capsys.readouterr().out
    folder = config.models_dir() / run
    plan = read_plan(folder)
    assert plan is not None and plan.budget_minutes == 0.05 and plan.epochs == cfg.epochs
    assert plan.images_per_second > 0 and plan.machine == machine.read_cpu().model
    assert plan.steps_per_epoch == max(
        1, int(0.05 * 60 * plan.images_per_second / cfg.batch_images) // cfg.epochs
    )
    # The plan is printed before the first epoch, with the machine it was timed on.
    assert out.index("machine: ") < out.index("timing ") < out.index("plan: ")
    assert f"to fit a budget of 0.05 min at the {plan.images_per_second:.1f} images/s" in out

    # Resumed: the stored plan is kept, never timed again, on this or another machine.
    def no_second_calibration(*args, **kwargs):
        raise AssertionError("a resumed run must keep its plan")

    monkeypatch.setattr(train_module, "calibrate_speed", no_second_calibration)
    more = LearningRates()
    folder = train_or_resume(cfg, run, extra_callbacks=[more], verbose=0)
    assert "keeping the plan it started with" in capsys.readouterr().out
    total = plan.total_steps
    # Calibration steps count for nothing: the run's steps are exactly the plan's ...
    assert [step for step, _ in rates.seen + more.seen] == [
        (e + 1) * plan.steps_per_epoch for e in range(plan.epochs)
    ]
    # ... under one schedule spanning exactly the planned total, across the interruption.
    for step, rate in rates.seen + more.seen:
        assert rate == pytest.approx(_expected_rate(cfg, total, step), rel=1e-5, abs=1e-9)
    assert more.seen[-1][1] == pytest.approx(cfg.learning_rate * 0.01, rel=1e-4)  # the end of the cosine

    card = ModelCard.load(folder)
    assert card.plan["total_steps"] == total and card.steps_run == total
    assert card.plan["budget_minutes"] == 0.05
    assert card.precision in ("float32", "bfloat16") and card.onednn in ("on", "off", "default")
    assert card.machine["cpu"] == machine.read_cpu().model and card.machine["cores"] >= 1
    with open(folder / "history.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["steps_done"]) for r in rows] == [
        (e + 1) * plan.steps_per_epoch for e in range(plan.epochs)
    ]
    assert {r["planned_steps"] for r in rows} == {str(total)}
    assert {r["budget_minutes"] for r in rows} == {"0.05"}
    assert all(r["cpu"] and r["precision"] and r["onednn"] for r in rows)
    assert json.loads((folder / PLAN).read_text())["steps_per_epoch"] == plan.steps_per_epoch


def test_a_precision_the_cpu_only_emulates_is_refused_before_anything_is_written(
    smoke_crops, monkeypatch, tmp_path
):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("model name\t: AMD EPYC 7B12\nflags\t\t: avx avx2 fma\n")
    real_read_cpu = machine.read_cpu
    monkeypatch.setattr(machine, "read_cpu", lambda path=cpuinfo: real_read_cpu(path))
    monkeypatch.delenv(machine.ALLOW_EMULATED_BFLOAT16, raising=False)
    monkeypatch.setattr(train_module, "gpu_present", lambda: False)
    with pytest.raises(ConfigError, match="no bfloat16 in hardware"):
        train(TrainConfig.preset("smoke", settings={"bfloat16": True}), "emulated-bf16", verbose=0)
    assert not (config.models_dir() / "emulated-bf16").exists()

    from facelib.app import cli

    code = cli.main(["train", "--preset", "smoke", "--name", "emulated-bf16", "--set", "bfloat16=true"])
    assert code == 1 and not (config.models_dir() / "emulated-bf16").exists()


def test_auto_precision_on_a_cpu_without_bfloat16_trains_in_float32(smoke_crops, monkeypatch, tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("model name\t: AMD EPYC 7B12\nflags\t\t: avx avx2 fma\n")
    real_read_cpu = machine.read_cpu
    monkeypatch.setattr(machine, "read_cpu", lambda path=cpuinfo: real_read_cpu(path))
    monkeypatch.setattr(train_module, "gpu_present", lambda: False)
    folder = train(
        TrainConfig.preset("smoke", settings={"precision": "auto", "epochs": 1}), "auto-avx2", verbose=0
    )
    card = ModelCard.load(folder)
    assert card.precision == "float32" and card.config["precision"] == "auto"
    assert card.machine["cpu"] == "AMD EPYC 7B12" and "avx512_bf16" not in card.machine["flags"]
    assert np.isfinite(card.history["final_loss"])


def test_a_run_made_before_budgets_is_taken_as_it_was(tmp_path):
    """config.json of a `make run` model made before precision and budgets existed: the
    cpu preset now asks for precision auto and 40 minutes, which are not differences
    (the old run keeps its precision and its fixed steps), while a real change is."""
    from facelib.training.training_config import config_differences

    older = {
        k: v
        for k, v in dataclasses.asdict(TrainConfig.preset("cpu")).items()
        if k not in ("precision", "minutes")
    }
    older.update(bfloat16=True, mixed_precision=False)
    assert config_differences(older, TrainConfig.preset("cpu"), auto_precision="bfloat16") == []
    # where auto would pick another precision, the older run's is a difference
    assert config_differences(older, TrainConfig.preset("cpu"), auto_precision="float32") == [
        "precision bfloat16 → auto"
    ]
    assert config_differences(older, TrainConfig.preset("cpu", epochs=12), "bfloat16") == ["epochs 9 → 12"]
    assert config_differences({**older, "minutes": None}, TrainConfig.preset("cpu"), "bfloat16") == [
        "minutes none → 40"
    ]


def test_the_cli_takes_steps_as_a_fixed_length_and_refuses_both(monkeypatch):
    from facelib.app import cli

    seen = {}
    monkeypatch.setattr(train_module, "train", lambda cfg, name, **kw: seen.setdefault("cfg", cfg) and None)
    monkeypatch.setattr(
        train_module, "train_or_resume", lambda cfg, name, **kw: seen.setdefault("cfg", cfg) and None
    )
    assert cli.main(["train", "--preset", "cpu", "--name", "x", "--minutes", "5", "--steps", "50"]) == 1
    assert "cfg" not in seen
    try:
        cli.main(["train", "--preset", "cpu", "--name", "x", "--steps", "50"])
    except Exception:  # the stub returns no folder: only the config it was given matters
        pass
    assert seen["cfg"].steps_per_epoch == 50 and seen["cfg"].minutes is None


def test_calibration_leaves_the_model_and_optimizer_as_they_were(monkeypatch):
    """Timed steps are real steps: weights, batch-norm statistics and every optimizer
    variable must be put back, or the run would not start where a fixed run starts."""
    import tensorflow as tf

    from facelib.recognition.model import build_embedding_model

    keras.utils.set_random_seed(0)
    model = build_embedding_model(32, 8, None, "l2")
    model.compile(optimizer=assembly.make_optimizer(TrainConfig(optimizer="adamw"), 1e-3), loss="mse")
    rng = np.random.default_rng(0)
    data = tf.data.Dataset.from_tensors(
        (rng.uniform(0, 255, (4, 32, 32, 3)).astype("float32"), np.zeros((4, 8), "float32"))
    ).repeat()
    model.fit(data, epochs=1, steps_per_epoch=2, verbose=0)  # a state that is not the initial one
    weights = [w.copy() for w in model.get_weights()]
    state = [np.array(v.numpy()) for v in model.optimizer.variables]
    speed = budget.calibrate_speed(model, data, 4, tf.distribute.get_strategy())
    assert speed > 0
    assert all(np.array_equal(a, b) for a, b in zip(weights, model.get_weights(), strict=True))
    assert all(np.array_equal(a, v.numpy()) for a, v in zip(state, model.optimizer.variables, strict=True))
    assert int(model.optimizer.iterations.numpy()) == 2


def test_history_keeps_older_rows_aligned_when_columns_are_added(tmp_path):
    """A run interrupted under an older facelib has fewer columns: resumed, its rows and
    the new ones stay under their own headings."""

    class Counter:
        iterations = keras.Variable(30, dtype="int64")

    history = tmp_path / "history.csv"
    history.write_text("epoch,loss,peak_rss_mb,val_auc\n0,1.5,2000.0,0.61\n")
    plan = budget.Plan(2, 30, budget_minutes=1.0, images_per_second=50.0)
    logger = run_folder.HistoryCSV(history, plan, machine.read_cpu(), "float32")
    logger.set_model(type("M", (), {"optimizer": Counter()})())
    Counter.iterations.assign(60)
    logger.on_epoch_end(1, {"loss": 1.25, "peak_rss_mb": 2100.0, "val_auc": 0.7, "images_per_second": 55.0})
    with open(history) as f:
        rows = list(csv.DictReader(f))
    assert [r["loss"] for r in rows] == ["1.5", "1.25"] and [r["val_auc"] for r in rows] == ["0.61", "0.7"]
    assert rows[0]["cpu"] == "" and rows[1]["cpu"] == machine.read_cpu().model
    assert rows[1]["steps_done"] == "60" and rows[1]["planned_steps"] == "60"
    assert history.read_text().startswith("epoch,")
    summary = run_folder.history_summary(history)
    assert summary["epochs"] == 2 and summary["images_per_second"] == 55.0
