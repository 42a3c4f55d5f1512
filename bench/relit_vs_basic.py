"""The relit recipe (the `cpu` preset's from commit a39ead5 until e723d88) against the
basic one, over every run of each: means, the unpaired (Welch) and the paired
comparison of runs with the same seed, CPU and steps.

    python bench/relit_vs_basic.py
    python bench/relit_vs_basic.py --score MODEL...   # a new run's three figures, one curve

The figures are the runs' own, copied from where they were measured, not measured here:
docs/recipes.md's robustness table for `robust-*`, except the seed-3 and seed-4 pairs,
whose one-curve figures are in docs/recipes.md's hand-written bullets (the table holds
their curve-per-half scores), as are `make run`'s models'. Validation AUC, suite AUC,
side-light AUC, each run scored with verify's one gamma curve, the correction every one
of them was scored with (the curve per half came after, and most of these models are no
longer at hand to score again). A run trained since is scored with `--score`: the suite
with verify's correction swapped for the one curve (not saved), so that it joins the
tally on the same correction as the rest.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from unittest import mock

import numpy as np
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine  # noqa: E402
from recipes import history  # noqa: E402

COLUMNS = ("validation", "suite", "side light")
# run → (validation AUC, suite AUC, side light AUC)
BASIC = {
    "yunet": (0.901, 0.881, 0.765),
    "yunet-again": (0.846, 0.832, 0.748),
    "yunet-seed1": (0.867, 0.849, 0.764),
    "yunet-seed2": (0.876, 0.863, 0.779),
    "make-cpu-basic": (0.851, 0.843, 0.746),  # beside make run's first, same steps and seed
    "yunet-seed3": (0.887, 0.867, 0.780),
    # scored with `--score robust-yunet-seed4` (AMD EPYC with AVX512_BF16, 2026-12-04)
    "yunet-seed4": (0.889, 0.862, 0.767),
    # make run on a clean clone, the preset basic again (9 × 574 steps by its budget, AMD
    # EPYC): scored with `--score models/make-cpu` in that clone
    "make-cpu, commit e723d88": (0.891, 0.873, 0.760),
}
RELIT = {
    "lighting-mild": (0.884, 0.867, 0.794),
    "lighting-mild-again": (0.843, 0.838, 0.783),
    "lighting-mild-seed1": (0.905, 0.883, 0.779),
    "lighting-mild-seed2": (0.863, 0.846, 0.771),
    "lighting-mild-seed3": (0.900, 0.880, 0.828),
    "make-cpu, commit f628163": (0.790, 0.788, 0.737),
    "make-cpu, commit ca06a58": (0.854, 0.833, 0.764),
    "make-cpu, commit 28a4636": (0.839, 0.834, 0.793),
    # scored with `--score /work/run-check2/models/make-cpu` (its clean clone's folder)
    "make-cpu, commit 6152de9": (0.857, 0.840, 0.735),
    # scored with `--score robust-lighting-mild-seed4` (beside yunet-seed4, same CPU)
    "lighting-mild-seed4": (0.781, 0.768, 0.751),
}
# the same seed, CPU and steps: basic → relit
TWINS = {
    "yunet": "lighting-mild",
    "yunet-again": "lighting-mild-again",
    "yunet-seed1": "lighting-mild-seed1",
    "yunet-seed2": "lighting-mild-seed2",
    "make-cpu-basic": "make-cpu, commit f628163",
    "yunet-seed3": "lighting-mild-seed3",
    "yunet-seed4": "lighting-mild-seed4",
}


def score_with_one_curve(model: str) -> tuple[float, float, float]:
    """(last epoch's validation AUC, suite AUC, side-light AUC) of a model, the suite's
    flagged crops corrected by the one curve as verify did before commit d6cbed7."""
    from facelib.data import quality
    from facelib.evaluation.robustness import robustness_report
    from facelib.recognition.model import resolve_model_folder

    def one_curve_correction(crop, conditions):
        if not any(w in quality.LIGHT_WARNINGS for w in conditions.warnings()):
            return crop
        return quality.one_curve(crop, conditions.brightness)

    folder = resolve_model_folder(model)
    validation = [float(r["val_auc"]) for r in history(folder) if r.get("val_auc")][-1]
    with mock.patch.object(quality, "light_corrected", one_curve_correction):
        report = robustness_report(folder, save=False)
    return validation, report.degraded_auc, report.row("lighting").auc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--score", nargs="+", metavar="MODEL", help="score these models with the one curve")
    args = parser.parse_args()
    if args.score:
        print(machine())
        for model in args.score:
            validation, suite, side = score_with_one_curve(model)
            print(
                f"{model}: validation {validation:.3f}, suite {suite:.3f}, side light {side:.3f} (one curve)"
            )
        return
    print(f"{len(RELIT)} relit runs against {len(BASIC)} basic; {len(TWINS)} twins (same seed, CPU, steps)")
    for recipe, runs in (("relit", RELIT), ("basic", BASIC)):
        for run, figures in runs.items():
            print(
                f"  {recipe} {run}: "
                + ", ".join(f"{c} {f:.3f}" for c, f in zip(COLUMNS, figures, strict=True))
            )
    for index, column in enumerate(COLUMNS):
        relit = np.array([run[index] for run in RELIT.values()])
        basic = np.array([run[index] for run in BASIC.values()])
        error = np.sqrt(relit.var(ddof=1) / len(relit) + basic.var(ddof=1) / len(basic))
        welch = stats.ttest_ind(relit, basic, equal_var=False).pvalue
        gaps = np.array([RELIT[twin][index] - BASIC[run][index] for run, twin in TWINS.items()])
        paired = stats.ttest_1samp(gaps, 0.0).pvalue
        # whether one recipe's runs spread wider than the other's (Brown–Forsythe)
        spread = stats.levene(relit, basic, center="median").pvalue
        # like pairs a paired test needs to find a gap this size 80% of the time at p < 0.05
        # (normal approximation, the twins' own spread)
        needed = ((stats.norm.ppf(0.975) + stats.norm.ppf(0.8)) * gaps.std(ddof=1) / abs(gaps.mean())) ** 2
        print(
            f"{column}: relit {relit.mean():.3f} (sd {relit.std(ddof=1):.3f}) against basic "
            f"{basic.mean():.3f} (sd {basic.std(ddof=1):.3f}; spreads differ: Brown-Forsythe p {spread:.2f}): "
            f"{relit.mean() - basic.mean():+.3f}, "
            f"{(relit.mean() - basic.mean()) / error:+.1f} standard errors, Welch p {welch:.2f}; "
            f"twins {' '.join(f'{g:+.3f}' for g in gaps)}: mean {gaps.mean():+.3f}, "
            f"relit ahead in {int((gaps > 0).sum())}, paired p {paired:.2f}; "
            f"about {needed:.0f} like pairs would tell a gap this size at 80% power"
        )
    # make run's five runs (four relit, one basic) and `make-cpu-basic` beside its first
    # trained the steps make run's timing bought (3,816 to 5,166), not the study's 4,032:
    # the means without them
    for index, column in enumerate(COLUMNS):
        relit, basic = (
            np.array([f[index] for run, f in runs.items() if not run.startswith("make-cpu")])
            for runs in (RELIT, BASIC)
        )
        welch = stats.ttest_ind(relit, basic, equal_var=False).pvalue
        print(
            f"{column}, the study's 4,032-step runs alone ({len(relit)} relit, {len(basic)} basic): "
            f"relit {relit.mean():.3f} against basic {basic.mean():.3f}, Welch p {welch:.2f}"
        )


if __name__ == "__main__":
    main()
