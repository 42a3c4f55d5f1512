"""How well calibrated verify's confidence is on pairs it never saw: the expected
calibration error (ECE) and a reliability diagram on LFW View 1's test pairs.

    python bench/confidence_ece.py --model RUN_OR_DIR [--out docs/reliability_view1.png]

The mapping is the model card's (fitted on the validation people's pairs by training or
`facelib evaluate`, logistic or isotonic by cross-validated ECE there); View 1 is only
measured here, never fitted on. Writes the plot and (unless --no-doc) the section
"Confidence calibration" of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, write_section  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="model folder or run name")
    parser.add_argument(
        "--out", default=str(Path(__file__).resolve().parent.parent / "docs" / "reliability_view1.png")
    )
    parser.add_argument("--no-doc", action="store_true", help="do not write docs/benchmarks.md")
    args = parser.parse_args(argv)

    from facelib.core import machine as facelib_machine

    facelib_machine.configure_math("evaluate")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from facelib.core.errors import FacelibError
    from facelib.core.metrics import brier_score, expected_calibration_error
    from facelib.evaluation import plots
    from facelib.evaluation.evaluate import evaluate_model
    from facelib.recognition.calibration import card_calibration
    from facelib.recognition.model import resolve_model_folder

    start = time.perf_counter()
    where = machine()
    folder = resolve_model_folder(args.model)
    from facelib.recognition.card import ModelCard

    calibration = card_calibration(ModelCard.load(folder), folder)
    mapping = calibration.confidence
    if mapping is None:
        raise FacelibError(calibration.confidence_note)
    evaluation = evaluate_model(folder, view2=False, save=False, progress=False)
    distances, same, _ = evaluation.distances["view1"]
    p = mapping(distances)
    ece, brier = expected_calibration_error(p, same), brier_score(p, same)
    figure = plots.reliability_diagram(p, same, f"{folder.name}, View 1 test pairs")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=110)
    plt.close(figure)
    scores = ", ".join(f"{m} ECE {s['ece']:.3f} / Brier {s['brier']:.3f}" for m, s in mapping.scores.items())
    line = (
        f"View 1 test pairs ({len(same)}: {int(same.sum())} same): ECE {ece:.3f}, Brier {brier:.3f}; "
        f"mapping {mapping.method}, chosen on the validation people's pairs by 5-fold "
        f"cross-validation ({scores})"
    )
    print(line)
    body = (
        f"Command: `python bench/confidence_ece.py --model {args.model}`\n"
        f"Machine: {where}. Model `{folder.name}`, {time.perf_counter() - start:.0f} s.\n\n"
        f"The confidence mapping: {mapping.describe()}.\n\n{line}.\n\n"
        f"![reliability diagram on View 1]({out.name})\n"
    )
    if not args.no_doc:
        write_section("Confidence calibration", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
