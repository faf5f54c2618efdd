"""Host test setup: firmware, boards and simulation importable under CPython."""

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for d in ("tools/shims", "simulation", "boards", "firmware"):
    p = os.path.join(ROOT, d)
    if p not in sys.path:
        sys.path.insert(0, p)

from hil_board import hil_board  # noqa: E402,F401  (the hardware-in-the-loop board fixture)
