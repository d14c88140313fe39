"""``cupyx.scipy`` on the double (``special`` only)."""
from . import special  # noqa: F401
