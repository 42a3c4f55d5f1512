"""The machine sets the math: the CPU read from cpuinfo (fake ones here), the precision
that follows from it, and oneDNN chosen per kind of work before TensorFlow loads."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys

import pytest

from facelib.core import machine
from facelib.core.errors import ConfigError
from facelib.core.machine import ALLOW_EMULATED_BFLOAT16, resolve_precision
from facelib.recognition.card import ModelCard
from facelib.training.training_config import TrainConfig

pytestmark = pytest.mark.tensorflow  # facelib's imports here load TensorFlow

EPYC_AVX2 = """processor	: 0
vendor_id	: AuthenticAMD
model name	: AMD EPYC 7B12
flags		: fpu vme sse sse2 avx avx2 fma bmi2
processor	: 1
model name	: AMD EPYC 7B12
flags		: fpu vme sse sse2 avx avx2 fma bmi2
"""
EPYC_BF16 = """processor	: 0
model name	: AMD EPYC 9B14
flags		: fpu sse avx avx2 fma avx512f avx512_vnni avx512_bf16 bmi2
"""
XEON_AMX = """processor	: 0
model name	: Intel(R) Xeon(R) Platinum 8481C
flags		: fpu avx avx2 fma avx512f amx_bf16 amx_tile
"""


def fake_cpu(tmp_path, text: str) -> machine.Cpu:
    """The CPU a fake x86 cpuinfo describes (the arch is this machine's, so set)."""
    path = tmp_path / "cpuinfo"
    path.write_text(text)
    return dataclasses.replace(machine.read_cpu(path), arch="x86_64")


def test_the_cpu_and_its_bfloat16_are_read_from_cpuinfo(tmp_path):
    avx2 = fake_cpu(tmp_path, EPYC_AVX2)
    assert avx2.model == "AMD EPYC 7B12"
    assert avx2.flags == ("avx2", "fma")
    assert not avx2.native_bfloat16 and not avx2.avx512
    bf16 = fake_cpu(tmp_path, EPYC_BF16)
    assert bf16.flags == ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16")
    assert bf16.native_bfloat16 and bf16.avx512
    assert fake_cpu(tmp_path, XEON_AMX).native_bfloat16  # AMX without AVX512_BF16
    missing = machine.read_cpu(tmp_path / "no-such-file")  # macOS, Windows: no cpuinfo
    assert missing.flags == () and not missing.native_bfloat16 and missing.cores >= 1
    assert "AMD EPYC 7B12" in avx2.describe() and "avx2, fma" in avx2.describe()


def test_precision_follows_the_hardware(tmp_path, monkeypatch):
    monkeypatch.delenv(ALLOW_EMULATED_BFLOAT16, raising=False)
    avx2, bf16 = fake_cpu(tmp_path, EPYC_AVX2), fake_cpu(tmp_path, EPYC_BF16)
    assert resolve_precision("auto", bf16, gpu=False)[0] == "bfloat16"
    assert resolve_precision("auto", avx2, gpu=False)[0] == "float32"
    assert resolve_precision("auto", avx2, gpu=True)[0] == "float16"
    assert resolve_precision("bfloat16", bf16, gpu=False)[0] == "bfloat16"
    assert resolve_precision("float32", bf16, gpu=False)[0] == "float32"
    # Asked for by name on a CPU that only emulates it: refused, with the way out.
    with pytest.raises(
        ConfigError, match="no bfloat16 in hardware.*10x slower.*FACELIB_ALLOW_EMULATED_BFLOAT16=1"
    ):
        resolve_precision("bfloat16", avx2, gpu=False)
    with pytest.raises(ConfigError, match="float16 asked for without a GPU"):
        resolve_precision("float16", bf16, gpu=False)
    assert resolve_precision("float16", avx2, gpu=True)[0] == "float16"
    monkeypatch.setenv(ALLOW_EMULATED_BFLOAT16, "1")
    assert resolve_precision("bfloat16", avx2, gpu=False) == (
        "bfloat16",
        "as asked, emulated (FACELIB_ALLOW_EMULATED_BFLOAT16=1)",
    )


def test_presets_state_a_preference_and_older_switches_still_read():
    assert TrainConfig.preset("cpu").precision == "auto"
    assert TrainConfig.preset("cpu").minutes > 0  # a budget, on any CPU
    assert TrainConfig.preset("smoke").minutes is None
    # `--set bfloat16=true`, and config.json files of runs made before `precision`
    assert TrainConfig.preset("smoke", settings={"bfloat16": True}).precision == "bfloat16"
    assert TrainConfig.preset("cpu", settings={"bfloat16": False}).precision == "float32"  # off means off
    assert TrainConfig.preset("gpu", settings={"mixed_precision": False}).precision == "float32"
    assert TrainConfig.preset("cpu-v1", bfloat16=True).precision == "bfloat16"


def test_onednn_is_chosen_per_kind_of_work(tmp_path):
    avx2, bf16 = fake_cpu(tmp_path, EPYC_AVX2), fake_cpu(tmp_path, EPYC_BF16)
    # Training runs faster with it, embedding without (docs/benchmarks.md).
    for cpu in (avx2, bf16):
        assert machine.onednn_wanted("train", cpu) is True
        assert (
            machine.onednn_wanted("verify", cpu) is False and machine.onednn_wanted("evaluate", cpu) is False
        )
    arm = machine.Cpu("Neoverse-V2", "aarch64", (), 2)
    assert machine.onednn_wanted("train", arm) is None  # not measured: TensorFlow's default
    with pytest.raises(ValueError, match="role must be one of train, evaluate, verify"):
        machine.onednn_wanted("dashboard", bf16)


def _in_fresh_process(code: str, **env: str) -> dict:
    environ = {
        k: v
        for k, v in os.environ.items()
        if k not in ("TF_ENABLE_ONEDNN_OPTS", "FACELIB_ROLE", "FACELIB_ONEDNN_CHOICE")
    }
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={**environ, "TF_CPP_MIN_LOG_LEVEL": "3", **env},
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


VARIABLE = {True: "1", False: "0", None: None}  # None: left to TensorFlow (not measured there)
REPORT = """
import json, os
from facelib.core import machine
{before}
import tensorflow
{after}
state = machine.math_state()
print(json.dumps({{"variable": os.environ.get("TF_ENABLE_ONEDNN_OPTS"), "role": state.role,
    "onednn": state.onednn, "by": state.chosen_by, "wanted": machine.onednn_wanted(state.role or "train", machine.read_cpu())}}))
"""


def test_the_setting_is_made_before_tensorflow_loads_and_a_users_value_wins():
    # import facelib chooses for FACELIB_ROLE (training by default); a role named before
    # TensorFlow loads replaces it; once TensorFlow has loaded nothing changes.
    plain = _in_fresh_process(REPORT.format(before="", after=""))
    assert plain["role"] == "train" and plain["by"] == "facelib"
    assert plain["variable"] == VARIABLE[plain["wanted"]] and plain["onednn"] == plain["wanted"]
    verify = _in_fresh_process(REPORT.format(before='machine.configure_math("verify")', after=""))
    assert verify["role"] == "verify" and verify["variable"] == VARIABLE[verify["wanted"]]
    by_env = _in_fresh_process(REPORT.format(before="", after=""), FACELIB_ROLE="verify")
    assert by_env["role"] == "verify" and by_env["variable"] == verify["variable"]
    # FaceVerifier's preference replaces the default, not a role named on purpose.
    prefer = 'machine.configure_math("verify", explicit=False)'
    assert _in_fresh_process(REPORT.format(before=prefer, after=""))["role"] == "verify"
    assert _in_fresh_process(REPORT.format(before=prefer, after=""), FACELIB_ROLE="train")["role"] == "train"
    late = _in_fresh_process(REPORT.format(before="", after='machine.configure_math("verify")'))
    assert late["by"] == "tensorflow" and late["variable"] == plain["variable"]
    for value in ("0", "1"):
        user = _in_fresh_process(
            REPORT.format(before='machine.configure_math("verify")', after=""), TF_ENABLE_ONEDNN_OPTS=value
        )
        assert user["by"] == "user" and user["variable"] == value and user["onednn"] == (value == "1")
    # A child of a facelib process (Voilà's kernel) inherits facelib's choice, marked as
    # such: it chooses again for its own role.
    inherited = _in_fresh_process(
        REPORT.format(before='machine.configure_math("verify")', after=""),
        TF_ENABLE_ONEDNN_OPTS=plain["variable"] or "1",
        FACELIB_ONEDNN_CHOICE=plain["variable"] or "1",
    )
    assert inherited["by"] == "facelib" and inherited["role"] == "verify"


def test_the_cli_names_a_role_for_every_verb_that_loads_tensorflow():
    from facelib.app import cli

    verbs = set(cli.build_parser()._subparsers._group_actions[0].choices)
    light = {"fetch", "preprocess"}  # no TensorFlow
    assert set(cli.ROLES) == verbs - light
    assert set(cli.ROLES.values()) <= set(machine.ROLES)
    assert cli.ROLES["verify"] == "verify" and cli.ROLES["train"] == "train"


def test_the_plan_is_printed_without_loading_tensorflow():
    """`make run` prints it first, before installing: the standard library only."""
    from facelib.app import doctor

    code = (
        "import json, sys\n"
        "from facelib.app import doctor\n"
        "text = doctor.report(['cpu', 'smoke'], timing=False)\n"
        "heavy = sorted(m for m in ('tensorflow', 'keras', 'numpy', 'cv2') if m in sys.modules)\n"
        "print(json.dumps({'text': text, 'heavy': heavy}))\n"
    )
    out = _in_fresh_process(code)
    assert out["heavy"] == []
    text = out["text"]
    cpu = machine.read_cpu()
    assert text.startswith(f"machine: {cpu.describe()}\n")
    precision = "bfloat16" if cpu.native_bfloat16 else "float32"
    minutes = TrainConfig.preset("cpu").minutes
    assert f"cpu: a budget of {minutes:g} min of training (64 px, {precision}, 32 pictures a step)" in text
    assert "smoke: 2 × 3 = 6 steps, fixed" in text
    assert f"make run PRESET=cpu: about {doctor.expected_minutes('cpu'):g} min from a clean clone" in text
    assert doctor.expected_minutes("cpu") >= minutes and doctor.expected_minutes("smoke") is None


EMBED = """
import json, sys
import numpy as np
from facelib.core import machine
from facelib.recognition.verification import FaceVerifier
verifier = FaceVerifier(sys.argv[1])
crops = [np.load(path) for path in sys.argv[2:]]
print(json.dumps({"onednn": machine.onednn_state(), "embeddings": verifier.embed_crops(crops).tolist()}))
"""


def test_onednn_on_and_off_give_the_same_embeddings(smoke_model, smoke_crops, tmp_path):
    """The switch changes kernels, not results: a trained model embeds real crops alike
    (float32 tolerance) either way, so thresholds calibrated under one hold under the other."""
    import numpy as np
    from PIL import Image

    paths = []
    for i, picture in enumerate(sorted(smoke_crops.rglob("*.jpg"))[:6]):
        paths.append(tmp_path / f"crop-{i}.npy")
        np.save(paths[-1], np.asarray(Image.open(picture).convert("RGB")))
    script = tmp_path / "embed.py"
    script.write_text(EMBED)
    found = {}
    for value in ("0", "1"):
        environ = {
            k: v for k, v in os.environ.items() if k not in ("TF_ENABLE_ONEDNN_OPTS", "FACELIB_ONEDNN_CHOICE")
        }
        out = subprocess.run(
            [sys.executable, str(script), str(smoke_model), *map(str, paths)],
            env={**environ, "TF_ENABLE_ONEDNN_OPTS": value, "TF_CPP_MIN_LOG_LEVEL": "3"},
            capture_output=True,
            text=True,
            timeout=300,
            check=True,
        )
        result = json.loads(out.stdout.strip().splitlines()[-1])
        found[result["onednn"]] = np.array(result["embeddings"])
    assert set(found) == {"on", "off"}
    assert found["on"].shape == (6, smoke_model_dim(smoke_model))
    assert np.abs(found["on"] - found["off"]).max() < 1e-4


def smoke_model_dim(folder) -> int:
    return ModelCard.load(folder).config["embedding_dim"]


def test_a_verifier_that_loads_tensorflow_first_runs_verify_math(smoke_model):
    """`FaceVerifier(...)` from a plain script: the default (training's) gives way to
    verify's before the model loads; a role named on purpose does not."""
    code = (
        "import json, os\n"
        "from facelib.core import machine\n"
        "from facelib.recognition.verification import FaceVerifier\n"
        f"FaceVerifier({str(smoke_model)!r})\n"
        "state = machine.math_state()\n"
        "print(json.dumps({'role': state.role, 'variable': os.environ.get('TF_ENABLE_ONEDNN_OPTS'),\n"
        "    'wanted': machine.onednn_wanted('verify', machine.read_cpu())}))\n"
    )
    plain = _in_fresh_process(code)
    assert plain["role"] == "verify" and plain["variable"] == VARIABLE[plain["wanted"]]
    assert _in_fresh_process(code, FACELIB_ROLE="train")["role"] == "train"
