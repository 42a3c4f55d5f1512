"""The machine facelib runs on, and the math it picks for it.

    from facelib.core import machine
    machine.read_cpu()              # model, the flags that matter, cores
    machine.configure_math("train") # before TensorFlow loads: oneDNN for this kind of work
    machine.math_state()            # what the process runs with, and who chose it

TensorFlow reads TF_ENABLE_ONEDNN_OPTS once, when it loads. facelib/__init__.py sets it
for the kind of work the process is expected to do; the CLI and the notebooks name
theirs before anything loads TensorFlow. A value the user set is never changed. The rule
in `onednn_wanted` is read off `bench/math_speed.py` (docs/benchmarks.md).

This module imports nothing heavy: it runs before TensorFlow is loaded.
"""

from __future__ import annotations

import os
import platform
import sys
from dataclasses import dataclass
from pathlib import Path

from facelib.core.errors import ConfigError

ONEDNN_VARIABLE = "TF_ENABLE_ONEDNN_OPTS"
# The kinds of work a process does; each may want other kernels.
ROLES = ("train", "evaluate", "verify")
# CPU flags that decide the math (Linux /proc/cpuinfo names).
FLAGS_OF_NOTE = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_tile")
BFLOAT16_FLAGS = ("avx512_bf16", "amx_bf16")


@dataclass(frozen=True)
class Cpu:
    model: str
    arch: str
    flags: tuple[str, ...]  # those of FLAGS_OF_NOTE the CPU lists
    cores: int  # the cores this process may use

    @property
    def native_bfloat16(self) -> bool:
        """Whether the CPU computes bfloat16 in hardware; elsewhere it is emulated,
        far slower than float32 (docs/benchmarks.md, "Figures once quoted in the code")."""
        return any(flag in self.flags for flag in BFLOAT16_FLAGS)

    @property
    def avx512(self) -> bool:
        return "avx512f" in self.flags

    def describe(self) -> str:
        flags = ", ".join(self.flags) or "none of " + ", ".join(FLAGS_OF_NOTE[:3])
        return f"{self.model} ({self.arch}), {self.cores} cores; flags: {flags}"


def read_cpu(cpuinfo: Path | str = "/proc/cpuinfo") -> Cpu:
    """The CPU, from Linux's cpuinfo (a test passes a fake one); elsewhere what the
    platform module says, with no flags (Apple silicon and Windows have no cpuinfo)."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        text = ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and model == (platform.processor() or platform.machine()):
            model = value.strip()
        elif key in ("flags", "Features"):  # x86, ARM
            flags.update(value.split())
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return Cpu(model, platform.machine(), tuple(f for f in FLAGS_OF_NOTE if f in flags), cores)


def onednn_wanted(role: str, cpu: Cpu) -> bool | None:
    """Whether oneDNN's kernels are the faster ones for `role` on `cpu` (None: not
    measured on this kind of CPU, TensorFlow decides).

    On both x86 CPUs measured (AVX2 only; AVX-512 with bfloat16 and AMX), training ran
    faster with them, and bfloat16 runs only with them; embedding ran faster without
    them, a picture or two at a time (verify, the dashboard) and in batches (evaluate).
    TensorFlow's own default differs by CPU: on with AVX-512 VNNI or bfloat16, off
    otherwise. Figures: docs/benchmarks.md, "oneDNN per kind of work" (the AVX2 CPU's
    under "Figures once quoted in the code")."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    if cpu.arch not in ("x86_64", "AMD64"):
        return None
    return role == "train"


# Emulated bfloat16 trains far slower than float32 (docs/benchmarks.md, "Figures once
# quoted in the code"): refused unless this is set, for those who measure it.
ALLOW_EMULATED_BFLOAT16 = "FACELIB_ALLOW_EMULATED_BFLOAT16"


def resolve_precision(requested: str, cpu: Cpu, gpu: bool) -> tuple[str, str]:
    """The precision a run uses for `requested` on this hardware, and why."""
    if requested == "auto":
        if gpu:
            return "float16", "auto: a GPU"
        if cpu.native_bfloat16:
            return "bfloat16", "auto: the CPU has bfloat16 in hardware"
        return "float32", "auto: the CPU has no bfloat16 in hardware (avx512_bf16, amx_bf16)"
    if requested == "bfloat16" and not gpu and not cpu.native_bfloat16:
        if os.environ.get(ALLOW_EMULATED_BFLOAT16) != "1":
            raise ConfigError(
                "precision bfloat16 asked for, but this CPU has no bfloat16 in hardware (avx512_bf16, "
                "amx_bf16): emulated, it trains about 10x slower than float32. Use precision auto or "
                f"float32, or set {ALLOW_EMULATED_BFLOAT16}=1 to run it anyway"
            )
        return requested, f"as asked, emulated ({ALLOW_EMULATED_BFLOAT16}=1)"
    if requested == "float16" and not gpu:
        raise ConfigError(
            "precision float16 asked for without a GPU: CPUs emulate it. Use precision auto "
            "(bfloat16 where the CPU has it, else float32)"
        )
    return requested, "as asked"


@dataclass(frozen=True)
class MathState:
    role: str | None  # the kind of work facelib chose for, None if it did not choose
    onednn: bool | None  # None: TensorFlow's own choice for this CPU
    chosen_by: str  # "facelib", "user" (the variable was set before facelib), "tensorflow"
    explicit: bool = True  # False: facelib's default, which a module's own preference replaces

    def describe(self) -> str:
        state = {True: "on", False: "off", None: "TensorFlow's default"}[self.onednn]
        why = {
            "facelib": f"facelib's choice for {self.role}",
            "user": f"{ONEDNN_VARIABLE} set by you",
            "tensorflow": "TensorFlow had loaded before this role was named",
        }[self.chosen_by]
        return f"oneDNN {state} ({why})"


# facelib's own choice is marked, so that a child process (Voilà's kernel, a benchmark)
# inherits it as facelib's, to choose again, not as the user's.
CHOICE_MARK = "FACELIB_ONEDNN_CHOICE"
_state: MathState | None = None
_user_value = (  # read when facelib is first imported
    os.environ.get(ONEDNN_VARIABLE)
    if os.environ.get(ONEDNN_VARIABLE) != os.environ.get(CHOICE_MARK)
    else None
)


def _as_bool(value: str | None) -> bool | None:
    if value is None:
        return None
    return value.strip().lower() in ("1", "true", "yes", "on")


def configure_math(role: str, cpu: Cpu | None = None, *, explicit: bool = True) -> MathState:
    """Set oneDNN for `role` if TensorFlow has not loaded yet and the user has not set it.
    Called again before TensorFlow loads (the CLI knows its verb, a notebook its job),
    the later role wins; a preference (explicit=False, e.g. FaceVerifier's) replaces only
    facelib's default, never a role named on purpose. Returns what the process runs with."""
    global _state
    if not explicit and _state is not None and (_state.explicit or "tensorflow" in sys.modules):
        return _state
    if _user_value is not None:
        _state = MathState(None, _as_bool(_user_value), "user")
    elif "tensorflow" in sys.modules:
        if _state is None or _state.role != role:
            _state = MathState(
                _state.role if _state else None, _as_bool(os.environ.get(ONEDNN_VARIABLE)), "tensorflow"
            )
    else:
        wanted = onednn_wanted(role, cpu or read_cpu())
        if wanted is None:
            os.environ.pop(ONEDNN_VARIABLE, None)
            os.environ.pop(CHOICE_MARK, None)
        else:
            os.environ[ONEDNN_VARIABLE] = os.environ[CHOICE_MARK] = "1" if wanted else "0"
        _state = MathState(role, wanted, "facelib", explicit)
    return _state


def math_state() -> MathState:
    """What this process runs with (see configure_math)."""
    if _state is None:
        return MathState(None, _as_bool(os.environ.get(ONEDNN_VARIABLE)), "tensorflow")
    return _state


def onednn_state() -> str:
    """ "on", "off" or "default", for records (history.csv, the card, benchmarks)."""
    return {True: "on", False: "off", None: "default"}[math_state().onednn]


def configure_default() -> MathState:
    """facelib/__init__.py's choice: the role FACELIB_ROLE names, else training's as a
    default (training loses more without oneDNN than embedding loses with it:
    docs/benchmarks.md, "oneDNN per kind of work"), which FaceVerifier replaces with
    verify's if it loads TensorFlow first."""
    role = os.environ.get("FACELIB_ROLE")
    if role and role not in ROLES:
        import warnings

        warnings.warn(
            f"FACELIB_ROLE={role!r} is not one of {', '.join(ROLES)}: choosing for training", stacklevel=2
        )
        role = None
    return configure_math(role or "train", explicit=bool(role))


def import_tensorflow_quietly() -> None:
    """TensorFlow prints C++ start-up notes (CPU features, oneDNN) straight to file
    descriptor 2 while it loads; they would bury the CLI's one-line messages and fill
    the dashboard page with a block of notices. Silence fd 2 for the import only: a
    failing import still raises, after it is restored. Call configure_math first."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    try:
        sys.stderr.flush()
        os.dup2(devnull, 2)
        import keras  # noqa: F401
        import tensorflow  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
