"""Benchmark: LFW open-set identification (who is this, or nobody enrolled?), model and LBP.

    python bench/open_set.py --model RUN [--people test|validation] [--seed 0] [--enroll 1 2] [--gallery-people M]

People with ≥ 3 usable crops form the gallery (a seeded choice of M of them, default
all), `--enroll` pictures each enrolled (1, 2, or both in one run: the same people);
their other pictures are mated probes and every picture of everyone else in the split
is a stranger. `--people test`: View 1 test people (the model must not have trained on
any); `--people validation`: the card's validation people (training side), for choosing
settings without touching test people. Reports rank-1, DIR at FPIR 1% and 10%, and the
FPIR and DIR the calibrated rule reaches; writes docs/benchmarks.md and a DIR-vs-FPIR plot
(facelib.evaluation.open_set holds the code; notebook 05 shows the same).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DOC, machine, write_section  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="a run name under models/ or a model folder")
    parser.add_argument("--people", choices=["test", "validation"], default="test")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--enroll", type=int, nargs="+", choices=[1, 2], default=[1, 2])
    parser.add_argument(
        "--gallery-people", type=int, default=None, help="at most M gallery people (default: all)"
    )
    parser.add_argument("--no-lbp", action="store_true", help="leave the LBP baseline out")
    args = parser.parse_args()

    from facelib.evaluation.open_set import lfw_open_set
    from facelib.evaluation.plots import dir_fpir

    at_start = machine()
    enroll = tuple(sorted(set(args.enroll)))
    report = lfw_open_set(
        args.model, args.people, args.seed, enroll, args.gallery_people, lbp=not args.no_lbp
    )

    validation = args.people == "validation"
    figure = DOC.parent / ("open_set_validation.png" if validation else "open_set.png")
    title = f"{report.model}, {args.people} people, seed {args.seed}"
    dir_fpir(report.curves(), report.points(), title=title).savefig(figure, dpi=120)

    command = (
        f"python bench/open_set.py --model {args.model} --people {args.people} --seed {args.seed} "
        f"--enroll {' '.join(map(str, enroll))}"
        + (f" --gallery-people {args.gallery_people}" if args.gallery_people else "")
        + (" --no-lbp" if args.no_lbp else "")
    )
    if validation:
        who = (
            f"the model card's {report.people_listed} validation people (training side, held out from "
            "training): for choosing the template mode and the margin without touching test people"
        )
    else:
        who = f"LFW View 1 test people (`peopleDevTest.txt`, {report.people_listed:,}; none in the model's card)"
    gallery = (
        f"all {report.eligible}"
        if not args.gallery_people
        else f"{args.gallery_people} (seeded) of the {report.eligible}"
    )
    in_sample = (
        " On validation people the calibration is in-sample (its impostor distances include these "
        "strangers'): what it tests here is the step from one comparison to a gallery of N "
        "(FAR = 1 − (1 − FPIR)^(1/N)), not the move to new people."
        if validation
        else ""
    )
    calibrated = (
        "\n".join(report.calibrated_lines())
        if report.calibrated
        else f"Not measured: {report.calibration_note}"
    )
    body = f"""
Command: `{command}`
Machine: {at_start}. Model `{report.model}`, crops `{report.crops}`.
People: {who}; {report.people_with_crops:,} of them have usable crops (detected faces),
{report.eligible} with ≥ 3. Gallery: {gallery} people with ≥ 3 crops; mated probes: their
pictures not enrolled; strangers: every picture of the other people (including people with
one or two pictures).

{chr(10).join(report.counts_lines())}

Rank-1 among the enrolled people (closed set), and the detection-and-identification rate
(DIR: mated probes named, and rightly) at a false-positive identification rate (FPIR:
strangers given a name) of 1% and 10%, the threshold read from these strangers' own
distances (the best one can do with hindsight). LBP: histograms with the chi-square
distance, a person's distance the smallest over their pictures.

{chr(10).join(report.table_lines())}

The calibrated rule (`OpenSetRule`: the model's impostor curve, {report.calibration_source})
chooses its threshold before seeing these people; what FPIR it actually reaches on these
strangers, with the exact binomial 95% interval, and the DIR there; a margin asks the nearest
person to lead the runner-up by that much.{in_sample}

{calibrated}

![DIR against FPIR]({figure.name})
"""
    print(body)
    write_section("Open-set identification" + (" (validation people)" if validation else ""), body)


if __name__ == "__main__":
    main()
