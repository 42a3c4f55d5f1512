"""The preset's relit recipe against the basic one, over every run of each: means, the
unpaired (Welch) and the paired comparison of runs with the same seed, CPU and steps.

    python bench/relit_vs_basic.py

The figures are the runs' own, copied from where they were measured, not measured here:
docs/recipes.md's robustness table for `robust-*`, except the seed-3 pair, whose
one-curve figures are README's plain rows (the docs table now holds their curve-per-half
scores), and README's robustness table for `make run`'s models. Validation AUC, suite
AUC, side-light AUC, each run scored with verify's one gamma curve, the correction every
one of them was scored with (the curve per half came after, and most of these models are
no longer at hand to score again).
"""

from __future__ import annotations

import numpy as np
from scipy import stats

COLUMNS = ("validation", "suite", "side light")
# run → (validation AUC, suite AUC, side light AUC)
BASIC = {
    "yunet": (0.901, 0.881, 0.765),
    "yunet-again": (0.846, 0.832, 0.748),
    "yunet-seed1": (0.867, 0.849, 0.764),
    "yunet-seed2": (0.876, 0.863, 0.779),
    "make-cpu-basic": (0.851, 0.843, 0.746),  # beside make run's first, same steps and seed
    "yunet-seed3": (0.887, 0.867, 0.780),
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
}
# the same seed, CPU and steps: basic → relit
TWINS = {
    "yunet": "lighting-mild",
    "yunet-again": "lighting-mild-again",
    "yunet-seed1": "lighting-mild-seed1",
    "yunet-seed2": "lighting-mild-seed2",
    "make-cpu-basic": "make-cpu, commit f628163",
    "yunet-seed3": "lighting-mild-seed3",
}


def main() -> None:
    print(f"{len(RELIT)} relit runs against {len(BASIC)} basic; {len(TWINS)} twins (same seed, CPU, steps)")
    for index, column in enumerate(COLUMNS):
        relit = np.array([run[index] for run in RELIT.values()])
        basic = np.array([run[index] for run in BASIC.values()])
        error = np.sqrt(relit.var(ddof=1) / len(relit) + basic.var(ddof=1) / len(basic))
        welch = stats.ttest_ind(relit, basic, equal_var=False).pvalue
        gaps = np.array([RELIT[twin][index] - BASIC[run][index] for run, twin in TWINS.items()])
        paired = stats.ttest_1samp(gaps, 0.0).pvalue
        print(
            f"{column}: relit {relit.mean():.3f} (sd {relit.std(ddof=1):.3f}) against basic "
            f"{basic.mean():.3f} (sd {basic.std(ddof=1):.3f}): {relit.mean() - basic.mean():+.3f}, "
            f"{(relit.mean() - basic.mean()) / error:+.1f} standard errors, Welch p {welch:.2f}; "
            f"twins {' '.join(f'{g:+.3f}' for g in gaps)}: mean {gaps.mean():+.3f}, "
            f"relit ahead in {int((gaps > 0).sum())}, paired p {paired:.2f}"
        )


if __name__ == "__main__":
    main()
