"""Benchmark: `verify` on each runtime side by side (Keras, and the model's exports on
onnxruntime and LiteRT, float32 and int8), and what int8 costs on LFW View 1.

    python bench/export_runtimes.py --model RUN|DIR [--out DIR] [--pairs 100]

Exports the model (`facelib.recognition.export`) as onnx and tflite, float32 and int8,
into --out (default: <model folder>/export/), reusing an export of the same model found
there. Then, in one process, for View 1 test pairs: `FaceVerifier.verify(a, b)` on each
runtime in turn (the order rotates from pair to pair), and the model alone on the two
ready crops; p50 and p95 of each, and the ratio to Keras. Accuracy: every View 1 test
pair the model never trained on, scored from the stored crops (as `facelib evaluate`),
with each runtime: AUC, its change from Keras, accuracy at the card's threshold, and the
largest difference between an exported embedding and Keras's. Writes docs/benchmarks.md
("Export runtimes").
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, write_section  # noqa: E402

EXPORTS = [("onnx", False), ("tflite", False), ("onnx", True), ("tflite", True)]


def label(fmt: str, int8: bool) -> str:
    runtime = "onnxruntime" if fmt == "onnx" else "tflite (LiteRT)"
    return f"{runtime}, {'int8' if int8 else 'float32'}"


def exports(folder: Path, out_root: Path) -> dict[str, Path]:
    from facelib.recognition.export import ExportInfo, export_model, export_name, is_export_folder

    made = {}
    for fmt, int8 in EXPORTS:
        out = out_root / export_name(fmt, int8)
        if is_export_folder(out) and Path(ExportInfo.load(out).source) == folder.resolve():
            print(f"reusing {out}", flush=True)
        else:
            start = time.perf_counter()
            export_model(folder, fmt, int8=int8, out=out)
            print(f"exported {out} in {time.perf_counter() - start:.0f} s", flush=True)
        made[label(fmt, int8)] = out
    return made


def latency(verifiers: dict, pairs, root: Path) -> dict[str, dict[str, list[float]]]:
    times = {name: {"verify": [], "model": []} for name in verifiers}
    names = list(verifiers)
    for n, pair in enumerate(pairs):
        a, b = pair.left.path(root), pair.right.path(root)
        order = names[n % len(names) :] + names[: n % len(names)]
        try:
            crops = [verifiers[names[0]].face_crop(p)[0] for p in (a, b)]
        except Exception:  # no face in one picture: not a latency sample
            continue
        for name in order:
            verifier = verifiers[name]
            start = time.perf_counter()
            verifier.verify(a, b)
            middle = time.perf_counter()
            verifier.embed_crops(crops)
            times[name]["verify"].append(middle - start)
            times[name]["model"].append(time.perf_counter() - middle)
    return times


def accuracy(verifiers: dict, folder: Path) -> dict[str, dict]:
    """View 1 test pairs of unseen people from the stored crops; each runtime's embeddings."""
    from facelib.core.decision import embedding_distance, same_person
    from facelib.core.metrics import roc_auc
    from facelib.data import datasets
    from facelib.data.pipeline import eval_dataset
    from facelib.evaluation.evaluate import pair_crop_paths, unseen_pairs
    from facelib.recognition.card import ModelCard

    card = ModelCard.load(folder)
    from facelib.core import config

    crops_root = config.processed_dir() / card.training_crops
    pairs, dropped = unseen_pairs(datasets.view1_pairs("test"), card.seen_identities)
    paths, left, right = pair_crop_paths(pairs, crops_root)
    batch = np.concatenate([b.numpy() for b in eval_dataset(paths, card.input_size, 64)])
    same = np.array([p.same for p in pairs], bool)
    threshold = card.threshold if card.threshold is not None else card.validation_threshold
    figures, reference = {}, None
    for name, verifier in verifiers.items():
        run = verifier._exported or (lambda x, m=verifier.model: m.predict(x, verbose=0))
        embeddings = np.concatenate([run(batch[i : i + 64]) for i in range(0, len(batch), 64)])
        reference = embeddings if reference is None else reference  # Keras comes first
        distances = embedding_distance(embeddings[left], embeddings[right])
        figures[name] = {
            "auc": roc_auc(distances, same),
            "accuracy": float(np.mean(same_person(distances, threshold) == same)),
            "max_diff": float(np.abs(embeddings - reference).max()),
        }
    return {"runtimes": figures, "pairs": len(pairs), "dropped": dropped, "threshold": threshold}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="model folder, or run name under models/")
    parser.add_argument("--out", type=Path, help="where the exports go (default: <model folder>/export)")
    parser.add_argument("--pairs", type=int, default=100, help="View 1 test pairs timed")
    args = parser.parse_args()

    from facelib.core import machine as facelib_machine

    facelib_machine.configure_math("verify")  # verify's oneDNN choice, before TensorFlow loads
    from facelib.data import datasets
    from facelib.recognition.model import resolve_model_folder
    from facelib.recognition.verification import DEFAULT_RUNTIME, FaceVerifier

    folder = resolve_model_folder(args.model)
    made = exports(folder, args.out or folder / "export")
    verifiers = {"Keras": FaceVerifier(folder, runtime="keras")}
    verifiers.update({name: FaceVerifier(path) for name, path in made.items()})
    root = datasets.fetch_lfw()
    times = latency(verifiers, datasets.view1_pairs("test")[: args.pairs], root)
    scores = accuracy(verifiers, folder)

    def p(xs: list[float], q: int) -> float:
        return 1000 * float(np.percentile(xs[3:], q))  # the first calls warm up

    keras_verify, keras_model = p(times["Keras"]["verify"], 50), p(times["Keras"]["model"], 50)
    rows = []
    for name in verifiers:
        t, s = times[name], scores["runtimes"][name]
        rows.append(
            f"| {name} | {p(t['verify'], 50):.1f} / {p(t['verify'], 95):.1f} ms | "
            f"{keras_verify / p(t['verify'], 50):.2f}x | {p(t['model'], 50):.1f} ms | "
            f"{keras_model / p(t['model'], 50):.2f}x | {s['auc']:.4f} | {s['auc'] - scores['runtimes']['Keras']['auc']:+.4f} | "
            f"{100 * s['accuracy']:.1f}% | {s['max_diff']:.1e} |"
        )
    float32 = [n for n in verifiers if "int8" not in n]
    fastest = min(float32, key=lambda n: p(times[n]["verify"], 50))
    samples = len(times["Keras"]["verify"])
    dropped = f" ({scores['dropped']} dropped: people it trained on)" if scores["dropped"] else ""
    body = f"""
Command: `python bench/export_runtimes.py --model {args.model}{f" --out {args.out}" if args.out else ""} --pairs {args.pairs}`
Machine: {machine()}; model `{folder.name}` ({verifiers["Keras"].input_size} px), detector {verifiers["Keras"].detector.name}.
Latency: {samples} View 1 test pairs with a face in both pictures, each runtime in turn in one process
(the order rotating), the first 3 left out; "speed-up" is Keras's p50 over the runtime's.
Accuracy: the {scores["pairs"]} View 1 test pairs of people the model never trained on{dropped}, from the stored
crops; accuracy at the card's threshold {scores["threshold"]:.4f}; the last column is the largest
difference between a runtime's embedding and Keras's.

| runtime | `verify` p50 / p95 | speed-up | model alone (2 crops) p50 | speed-up | View 1 AUC | Δ AUC | accuracy | max \\|Δ embedding\\| |
| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |
{chr(10).join(rows)}

The fastest float32 runtime at `verify` p50 here: {fastest}. FaceVerifier's default runtime: {DEFAULT_RUNTIME}
(`facelib.recognition.verification.DEFAULT_RUNTIME`; `FaceVerifier(runtime=...)`, `facelib verify --runtime`).
"""
    print(body)
    write_section("Export runtimes", body)


if __name__ == "__main__":
    main()
