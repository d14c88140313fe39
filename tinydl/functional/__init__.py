"""Differentiable ops, by family (``import tinydl.functional as F``).

Every public function here has an entry in the op catalogue (tests/catalogue/), which checks it against an
independent reference, with gradcheck and with hypothesis-generated inputs.
"""
from .elementwise import *  # noqa: F401,F403
from .activation import *  # noqa: F401,F403
from .reduction import *  # noqa: F401,F403
from .shape import *  # noqa: F401,F403
from .linalg import *  # noqa: F401,F403
from . import elementwise, activation, reduction, shape, linalg

__all__ = [name for module in (elementwise, activation, reduction, shape, linalg) for name in module.__all__]
from .recurrent import *  # noqa: F401,F403
from .attention import *  # noqa: F401,F403
from . import recurrent, attention
__all__ += recurrent.__all__ + attention.__all__
