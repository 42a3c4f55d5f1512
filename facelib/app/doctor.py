"""What this machine is, the math facelib picks for it, and the plan of each preset.

    facelib doctor [--preset cpu] [--no-timing]
    python -m facelib.app.doctor --no-timing --preset cpu   # before facelib's dependencies are installed
    from facelib.app import doctor; print(doctor.report(["cpu"], timing=False

Without timing it loads nothing but the standard library, so `make run` prints it as its
first line, before installing; with timing it loads TensorFlow, runs a few ResNet50 train
steps per input size and precision on random pictures, and says what each preset's
training would take here.
"""

from __future__ import annotations

import argparse
import time

from facelib.core import config, machine
from facelib.core.errors import ConfigError
from facelib.training.training_config import TrainConfig

# Rough minutes of the steps around a budget's training in `make run` on 2 cores, from
# its logs (docs/recipes.md): installing, fetching and cropping LFW the first time;
# building the graph, timing steps and validating each epoch; `facelib evaluate`.
PREPARE_MINUTES = 4
AROUND_TRAINING_MINUTES = 2
EVALUATE_MINUTES = 1
TIMED_STEPS = 8


def time_train_step(input_size: int, precision: str, batch: int = 32, steps: int = TIMED_STEPS) -> float:
    """Images/s of a bare ResNet50 train step (AdamW, random pictures, no input cost)."""
    import keras
    import numpy as np
    import tensorflow as tf

    from facelib.recognition.model import build_embedding_model
    from facelib.training.train import KERAS_POLICIES

    before = keras.mixed_precision.global_policy()
    try:
        keras.mixed_precision.set_global_policy(KERAS_POLICIES[precision])
        model = build_embedding_model(input_size, 128, None, "l2")
        model.compile(optimizer=keras.optimizers.AdamW(1e-3), loss="mse")
        images = (
            np.random.default_rng(0).uniform(0, 255, (batch, input_size, input_size, 3)).astype("float32")
        )
        data = tf.data.Dataset.from_tensors((images, np.zeros((batch, 128), "float32"))).repeat()
        model.fit(data, epochs=1, steps_per_epoch=2, verbose=0, shuffle=False)  # build the graph
        start = time.perf_counter()
        model.fit(data, epochs=1, steps_per_epoch=steps, verbose=0, shuffle=False)
        return steps * batch / (time.perf_counter() - start)
    finally:
        keras.mixed_precision.set_global_policy(before)


def plan_line(name: str, speeds: dict[tuple[int, str], float], cpu: machine.Cpu, gpu: bool) -> str:
    """What preset `name` would train here: its budget, or its fixed steps and, when
    timed, how long they would take."""
    cfg = TrainConfig.preset(name)
    try:
        precision, _ = machine.resolve_precision(cfg.precision, cpu, gpu)
    except ConfigError:
        return f"{name}: refused here (its precision {cfg.precision} is emulated on this CPU)"
    speed = speeds.get((cfg.input_size, precision))
    what = f"{cfg.input_size} px, {precision}, {cfg.batch_images} pictures a step"
    if cfg.minutes is not None:
        buys = ""
        if speed:
            steps = int(cfg.minutes * 60 * speed / cfg.batch_images)
            buys = f"; at the {speed:.0f} images/s timed here, about {steps:,} steps"
        return (
            f"{name}: a budget of {cfg.minutes:g} min of training ({what}) in {cfg.epochs} epochs; "
            f"the run times its first steps and fixes how many fit{buys}"
        )
    steps = cfg.epochs * cfg.steps_per_epoch
    took = f", about {steps * cfg.batch_images / speed / 60:.0f} min here" if speed else ""
    return f"{name}: {cfg.epochs} × {cfg.steps_per_epoch} = {steps:,} steps, fixed ({what}){took}"


def expected_minutes(name: str) -> float | None:
    """`make run`'s minutes from a clean clone to the dashboard, for a preset with a budget."""
    minutes = TrainConfig.preset(name).minutes
    if minutes is None:
        return None
    return PREPARE_MINUTES + minutes + AROUND_TRAINING_MINUTES + EVALUATE_MINUTES


def expected_line(name: str) -> str | None:
    total = expected_minutes(name)
    if total is None:
        return None
    return (
        f"make run PRESET={name}: about {total:g} min from a clean clone to the dashboard: "
        f"~{PREPARE_MINUTES} install, fetch and crop, {TrainConfig.preset(name).minutes:g} training "
        f"+ ~{AROUND_TRAINING_MINUTES} building, timing and validating, ~{EVALUATE_MINUTES} evaluate "
        "(the steps around training as timed on a 2-core Intel Xeon with AVX512_BF16, LFW copied locally; "
        "steps already done are skipped)"
    )


def report(presets: list[str] | None = None, timing: bool = True) -> str:
    """The machine, the math, and the plan of each preset (all of them by default)."""
    cpu = machine.read_cpu()
    presets = presets or list(config.PRESETS)
    lines = [f"machine: {cpu.describe()}"]
    choice = {True: "on", False: "off", None: "TensorFlow's default"}
    roles = ", ".join(f"{role} {choice[machine.onednn_wanted(role, cpu)]}" for role in machine.ROLES)
    lines.append(f"oneDNN for each kind of work (unless TF_ENABLE_ONEDNN_OPTS is set): {roles}")
    gpu = False
    speeds: dict[tuple[int, str], float] = {}
    if timing:
        import tensorflow as tf

        gpu = bool(tf.config.list_physical_devices("GPU"))
        lines.append(
            f"TensorFlow {tf.__version__}, GPU: {'yes' if gpu else 'none'}; this process: {machine.math_state().describe()}"
        )
        wanted = set()
        for name in presets:
            cfg = TrainConfig.preset(name)
            try:
                wanted.add((cfg.input_size, machine.resolve_precision(cfg.precision, cpu, gpu)[0]))
            except ConfigError:  # refused here: nothing to time
                continue
        lines.append(
            f"timed ResNet50 train steps (32 random pictures, {TIMED_STEPS} steps after 2 to build):"
        )
        for size, precision in sorted(wanted):
            speeds[(size, precision)] = time_train_step(size, precision)
            lines.append(f"  {size:>3} px {precision:<8} {speeds[(size, precision)]:6.1f} images/s")
    else:
        lines.append("GPU: not looked for (`facelib doctor` loads TensorFlow, looks, and times steps)")
    used, why = machine.resolve_precision("auto", cpu, gpu)
    lines.append(f"precision auto: {used} ({why.removeprefix('auto: ')})")
    lines.append("plans:")
    lines.extend(f"  {plan_line(name, speeds, cpu, gpu)}" for name in presets)
    lines.extend(line for line in map(expected_line, presets) if line)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m facelib.app.doctor", description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=list(config.PRESETS), action="append", help="default: all")
    parser.add_argument("--no-timing", dest="timing", action="store_false")
    args = parser.parse_args(argv)
    print(report(args.preset, timing=args.timing))


if __name__ == "__main__":
    main()
