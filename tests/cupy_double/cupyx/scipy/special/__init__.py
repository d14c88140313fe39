"""``cupyx.scipy.special.erf`` on the double: the error function elementwise (``math.erf``), in the input's
floating dtype."""
from __future__ import annotations

import math
from typing import Any

import numpy

from cupy._double import wrap
from cupy._ufunc import _operand

_erf = numpy.frompyfunc(math.erf, 1, 1)


def erf(x: Any) -> Any:
    data = numpy.asarray(_operand(x))
    dtype = data.dtype if data.dtype.kind == "f" else numpy.float64
    return wrap(_erf(data).astype(dtype))
