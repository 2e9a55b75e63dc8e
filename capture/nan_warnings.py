"""Silencing numpy's warnings about all-NaN slices, where NaN means "not measured" by design."""
from __future__ import annotations

import warnings
from contextlib import contextmanager

import numpy as np


@contextmanager
def quiet_nan_warnings():
    """nanmedian/nanmean of an all-NaN slice warn and return NaN; an unmeasured joint or bone is
    expected here (it stays NaN and is counted), not a problem worth a warning."""
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        yield
