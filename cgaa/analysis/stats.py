"""Summary statistics shared by the analysis and the benchmarks."""
from __future__ import annotations

import math
from typing import Optional, Sequence, Tuple

import numpy as np


def mean_se(xs: Sequence[Optional[float]]) -> Tuple[float, float]:
    """(mean, standard error of the mean) of the finite values of ``xs``, in the units of ``xs``.

    The standard error is the sample standard deviation (ddof 1) over √n. ``None``, NaN and
    infinite values are skipped; NaN for both when none is left, a NaN error for one value.
    """
    a = np.asarray([x for x in xs if x is not None and math.isfinite(x)], dtype=float)
    if len(a) == 0:
        return float("nan"), float("nan")
    if len(a) == 1:
        return float(a[0]), float("nan")
    return float(a.mean()), float(a.std(ddof=1) / math.sqrt(len(a)))
