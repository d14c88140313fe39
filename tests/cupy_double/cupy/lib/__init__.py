"""``cupy.lib`` on the double."""
from . import stride_tricks  # noqa: F401
