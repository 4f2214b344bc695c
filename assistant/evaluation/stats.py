"""Summary statistics shared by the evaluations and the benchmark."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def percentile(values: Sequence[float], pct: float) -> float | None:
    """The ``pct``-th percentile (0–100, linear interpolation); None for no values."""
    if not values:
        return None
    return float(np.percentile(np.asarray(values, dtype=np.float64), pct))
