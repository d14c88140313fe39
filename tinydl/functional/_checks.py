"""When ops check the *values* of their inputs (class targets, embedding ids within range).

Reading a value from the GPU stops the host until every queued kernel has run, so a check that reads one in each
training step would cost the GPU its head start. On the CPU the checks always run; on a GPU they run under
``tinydl.detect_anomaly()``. Outside it an out-of-range index on the GPU is not reported: CuPy's indexing wraps
out-of-range indices around instead of raising, so run one step under ``detect_anomaly`` (or on the CPU) when a
GPU run's results look wrong.
"""
from __future__ import annotations

from typing import Any

import numpy

from ..anomaly import is_anomaly_enabled


def check_values_now(array: Any) -> bool:
    """True when the values of ``array`` may be read for a check now: on the CPU, or under detect_anomaly."""
    return type(array) is numpy.ndarray or is_anomaly_enabled()
