"""Checking helpers that the notebooks' test cells call.

Each helper runs learner code on random inputs, compares it with numeric gradients (central
differences in float64) and with the reference implementation, and fails with a message that
says what to fix. The helpers are grouped by topic; everything is importable from here.
"""

from .core import *  # noqa: F401,F403
from .graphs import *  # noqa: F401,F403
from .derivatives import *  # noqa: F401,F403
from .scalar import *  # noqa: F401,F403
from .dual import *  # noqa: F401,F403
from .tensor import *  # noqa: F401,F403
from .engine import *  # noqa: F401,F403
from .training import *  # noqa: F401,F403
from .conv import *  # noqa: F401,F403
from .recurrent import *  # noqa: F401,F403
