"""models/<run>/ while a run trains: what an earlier attempt left there (finished,
interrupted, or nothing backed up), and the files that record progress.

- config.json: the settings, written before the first epoch; a resumed run must
  repeat them.
- backup/: the whole training state after the last complete epoch:
  epoch-<n>.weights.h5 (weights, optimizer and its step counter) and state.json, which
  names it and is written last, so a backup is whole or absent. The backup is the run's
  only record of progress until model.keras and card.json exist: it is removed after
  them, never before.
- history.csv: a row per epoch, cut back to the backup's epochs on resume.
- epochs/ (`keep_epochs` only): the embedding's weights after each epoch, kept after
  the run (EpochWeights).
- plan.json: see facelib.training.budget.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import keras
import numpy as np

from facelib.core import config, machine
from facelib.core.errors import ConfigError, RunFolderError
from facelib.core.files import atomic_path, write_atomic, write_json_atomic
from facelib.recognition.card import ModelCard
from facelib.training.budget import PLAN, Plan, read_plan
from facelib.training.training_config import TrainConfig, config_differences

BACKUP_STATE = "state.json"
EPOCHS = "epochs"  # keep_epochs: the weights of every epoch
# keras.callbacks.BackupAndRestore's files, used by facelib before it wrote its own:
# runs interrupted then still resume.
_KERAS_BACKUP = ("training_metadata.json", "latest.weights.h5")

# ----------------------------------------------------------------------- what is there


@dataclass(frozen=True)
class Backup:
    epochs: int  # complete epochs
    weights: Path


def read_backup(folder: Path) -> Backup | None:
    """The backup of the run in `folder`, or None when no epoch has been backed up."""
    backup = Path(folder) / "backup"
    state, legacy = backup / BACKUP_STATE, backup / _KERAS_BACKUP[0]
    if not state.is_file() and not legacy.is_file():
        return None
    source = state if state.is_file() else legacy
    try:
        saved = json.loads(source.read_text())
        epochs = int(saved["epoch"])
        weights = backup / (saved["weights"] if source == state else _KERAS_BACKUP[1])
    except (ValueError, KeyError, TypeError) as exc:
        raise RunFolderError(f"{source} is damaged ({exc})", Path(folder).name) from exc
    if not weights.is_file():
        raise RunFolderError(f"{source} names {weights.name}, which is missing", Path(folder).name)
    return Backup(epochs, weights)


def saved_config(folder: Path) -> dict | None:
    path = folder / "config.json"
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except ValueError as exc:
        raise RunFolderError(f"{path} is damaged ({exc})", folder.name) from exc


def is_finished(folder: Path) -> bool:
    """Training saved model.keras and card.json, its last step (a kill just after may
    have left the backup: it is no longer needed)."""
    return (Path(folder) / "model.keras").is_file() and (Path(folder) / "card.json").is_file()


def remove_backup(backup: Path) -> None:
    # state.json first: a kill part-way through leaves no backup that looks whole.
    (backup / BACKUP_STATE).unlink(missing_ok=True)
    (backup / _KERAS_BACKUP[0]).unlink(missing_ok=True)
    shutil.rmtree(backup, ignore_errors=True)


# ----------------------------------------------------------------------- the run's state


def check_finished_settings(folder: Path, run_name: str, cfg: TrainConfig, auto_precision: Callable[[], str]):
    """A finished run is taken as this one only if it was trained with these settings."""
    saved = saved_config(folder)
    if saved is None:  # config.json lost: the card holds the same settings
        saved = ModelCard.load(folder).config or None
    differences = config_differences(saved, cfg, auto_precision()) if saved is not None else []
    if differences:
        raise RunFolderError(
            f"{run_name} already finished with other settings ({', '.join(differences)})", run_name
        )


@dataclass(frozen=True)
class RunFolder:
    """models/<run>/ as an attempt to train finds it. Only the chief writes there."""

    name: str
    path: Path
    chief: bool
    found: Backup | None  # how far an earlier attempt got
    saved: dict | None  # its config.json

    @property
    def done(self) -> int:
        """Complete epochs: the backup's, not history.csv's, say where fit resumes and
        the step the data stream restarts from."""
        return self.found.epochs if self.found else 0

    @property
    def backup(self) -> Path:
        return self.path / "backup"

    @property
    def epochs(self) -> Path:
        return self.path / EPOCHS

    @property
    def history_csv(self) -> Path:
        return self.path / "history.csv"

    def begin(self, cfg: TrainConfig) -> Plan | None:
        """Prepare the folder for this attempt and return the plan it trains on: the
        interrupted run's, or fixed steps; None for a budget still to plan."""
        plan = self._kept_plan(cfg)
        if self.chief:
            keep_history(self.history_csv, self.done)
            if not self.done and self.backup.exists():
                remove_backup(self.backup)  # at most stray temporary files of an unfinished first save
            for stale in kept_epochs(self.path):
                if epoch_number(stale) > self.done:  # the backup lost it: it is trained again
                    stale.unlink()
            self.path.mkdir(parents=True, exist_ok=True)
            if not self.done:
                (self.path / PLAN).unlink(missing_ok=True)
            write_json_atomic(self.path / "config.json", asdict(cfg))
        return plan

    def _kept_plan(self, cfg: TrainConfig) -> Plan | None:
        # A plan is kept only with the epochs it planned: a fresh start times the machine anew.
        if not self.done:
            return None if cfg.minutes is not None else Plan(cfg.epochs, cfg.steps_per_epoch)
        plan = read_plan(self.path)
        if plan is None and self.saved.get("minutes") is not None:
            raise ConfigError(f"{self.path} holds a backup of a budget run but not its {PLAN}")
        if plan is None:  # a fixed-steps run, or one made before budgets: its own steps
            plan = Plan(
                self.saved.get("epochs", cfg.epochs), self.saved.get("steps_per_epoch", cfg.steps_per_epoch)
            )
            if cfg.minutes is not None:  # made before budgets; stored, so a later resume keeps it too
                print(f"{self.name} was started with fixed steps: it keeps them, without a budget")
                if self.chief:
                    write_json_atomic(self.path / PLAN, asdict(plan))
        return plan


def open_run(
    run_name: str, cfg: TrainConfig, resume: bool, chief: bool, auto_precision: Callable[[], str]
) -> RunFolder:
    """models/<run_name>/ checked against this attempt, writing nothing: a finished run
    is refused, an interrupted one continued only with --resume and its own settings,
    one with no epoch backed up started afresh."""
    folder = config.models_dir() / run_name
    if is_finished(folder):
        if resume:
            raise ConfigError(f"{run_name} already finished ({folder / 'model.keras'}); nothing to resume")
        raise RunFolderError(f"{folder} already holds a trained model", run_name)
    found = read_backup(folder)
    done = found.epochs if found else 0
    saved = saved_config(folder)
    if chief and folder.exists() and not done:  # a non-chief may find the chief's new folder
        if saved is None and any(not p.name.startswith(".") for p in folder.iterdir()):
            raise RunFolderError(f"{folder} holds files but no training run (no config.json)", run_name)
        if saved is not None:
            print(f"{run_name}: no epoch of the earlier attempt was backed up; starting it afresh")
    if done and not resume and chief:
        raise RunFolderError(
            f"{folder} holds an interrupted run ({done} epoch(s) done)", run_name, resumable=True
        )
    if done and saved is None:
        raise RunFolderError(f"{folder} has a backup but no config.json", run_name)
    differences = config_differences(saved, cfg, auto_precision()) if done else []
    if differences:
        raise RunFolderError(
            f"{run_name} continues only with the settings it started with; they differ "
            f"({', '.join(differences)}): resume with those",
            run_name,
        )
    return RunFolder(run_name, folder, chief, found, saved)


# ----------------------------------------------------------------------- the backup


class EpochBackup(keras.callbacks.Callback):
    """Backs up the training state after each epoch. It must be the last callback: an
    epoch counts as done only once its validation AUC and history.csv row exist."""

    def __init__(self, backup: Path):
        super().__init__()
        self.backup = backup

    def on_epoch_end(self, epoch, logs=None):
        if logs and not np.isfinite(float(logs.get("loss", 0.0))):
            return  # a diverged state is nothing to resume from
        name = f"epoch-{epoch + 1}.weights.h5"
        with atomic_path(self.backup / name, suffix=".weights.h5") as tmp:
            self.model.save_weights(tmp)
        write_json_atomic(self.backup / BACKUP_STATE, {"epoch": epoch + 1, "weights": name})
        for old in self.backup.glob("epoch-*.weights.h5"):
            if old.name != name:
                old.unlink(missing_ok=True)


class EpochWeights(keras.callbacks.Callback):
    """`keep_epochs`: the embedding's weights after each epoch, as
    epochs/epoch-N.weights.h5 in the run folder (float32 variables whatever the
    precision; they load into the model `build_embedding_model` makes from the run's
    settings). Without a classifier head the embedding model is the compiled one, and
    the file holds its optimizer state too (three times the size). Before the backup, so
    a run killed between the two trains that epoch again and rewrites it. The chief
    alone writes it: saving weights reads variables and needs no other worker."""

    def __init__(self, folder: Path, embedding_model: keras.Model):
        super().__init__()
        self.folder, self.embedding_model = Path(folder), embedding_model

    def on_epoch_end(self, epoch, logs=None):
        if logs and not np.isfinite(float(logs.get("loss", 0.0))):
            return  # diverged weights are nothing to study either
        self.folder.mkdir(parents=True, exist_ok=True)
        with atomic_path(self.folder / f"epoch-{epoch + 1}.weights.h5", suffix=".weights.h5") as tmp:
            self.embedding_model.save_weights(tmp)


def kept_epochs(folder: Path) -> list[Path]:
    """The weights `keep_epochs` kept in a run folder, in epoch order."""
    return sorted(Path(folder, EPOCHS).glob("epoch-*.weights.h5"), key=epoch_number)


def epoch_number(kept: Path) -> int:
    return int(kept.name.removeprefix("epoch-").removesuffix(".weights.h5"))


# ----------------------------------------------------------------------- history.csv


class HistoryCSV(keras.callbacks.Callback):
    """history.csv: a row per epoch of its logs, and where and how it was trained (a
    resumed run may go on on another machine). The record goes to the file only: the
    progress bar averages every value in the logs, and text is no number. The file is
    rewritten whole (atomically) each epoch under the union of the columns, so a run
    resumed by a newer facelib, with more columns, keeps its rows aligned."""

    def __init__(self, path: Path, plan: Plan, cpu: machine.Cpu, precision: str):
        super().__init__()
        self.path = Path(path)
        self.record = {
            "cpu": cpu.model,
            "cpu_flags": " ".join(cpu.flags),
            "cores": cpu.cores,
            "precision": precision,
            "onednn": machine.onednn_state(),
            "budget_minutes": plan.budget_minutes if plan.budget_minutes is not None else "",
            "planned_steps": plan.total_steps,
        }

    def on_epoch_end(self, epoch, logs=None):
        rows, columns = [], ["epoch"]
        if self.path.is_file():
            with open(self.path, newline="") as f:
                reader = csv.DictReader(f)
                rows, columns = list(reader), list(reader.fieldnames or columns)
        steps = int(self.model.optimizer.iterations.numpy())  # counted, not planned
        values = {k: float(v) for k, v in (logs or {}).items()}
        row = {"epoch": epoch, **values, **self.record, "steps_done": steps}
        columns += sorted(k for k in row if k not in columns)
        out = io.StringIO()
        writer = csv.DictWriter(out, columns, restval="", lineterminator="\n")
        writer.writeheader()
        writer.writerows([*rows, row])
        write_atomic(self.path, out.getvalue())


def _row_epoch(line: str) -> int | None:
    try:
        return int(line.split(",", 1)[0])  # HistoryCSV writes the epoch first
    except ValueError:
        return None


def keep_history(history_csv: Path, epochs: int) -> None:
    """Cut history.csv back to the rows of the `epochs` epochs in the backup: a kill
    after an epoch's row but before its backup leaves a row for an epoch that is
    trained again."""
    lines = history_csv.read_text().splitlines(keepends=True) if history_csv.is_file() else []
    rows = lines[1:]
    kept = [r for r in rows if (_row_epoch(r) is not None and _row_epoch(r) < epochs)]
    if [_row_epoch(r) for r in kept] != list(range(epochs)):
        raise RunFolderError(
            f"{history_csv} does not hold one row for each of the {epochs} epoch(s) in the backup",
            history_csv.parent.name,
        )
    if not kept:
        history_csv.unlink(missing_ok=True)  # HistoryCSV writes a fresh header
    elif len(kept) != len(rows):
        write_atomic(history_csv, lines[0] + "".join(kept))


def history_summary(history_csv: Path) -> dict:
    with open(history_csv) as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return {}
    last = rows[-1]
    speeds = [float(r["images_per_second"]) for r in rows if r.get("images_per_second")]
    best = max(rows, key=lambda r: float(r.get("val_auc") or 0))
    return {
        "epochs": len(rows),
        "final_loss": float(last["loss"]),
        "final_val_auc": float(last.get("val_auc") or "nan"),
        "best_val_auc": float(best.get("val_auc") or "nan"),
        "best_epoch": int(best["epoch"]) + 1,
        "peak_rss_mb": max(float(r.get("peak_rss_mb") or 0) for r in rows),
        # the median epoch's, of the epochs that timed it
        "images_per_second": float(np.median(speeds)) if speeds else None,
    }
