"""Put firmware/, boards/, simulation/ and tools/shims/ at the front of sys.path.

Host code imports this module before any firmware module: `import tools.paths`.
"""

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DIRS = ("firmware", "boards", "simulation", os.path.join("tools", "shims"))


def setup():
    for d in reversed(DIRS):
        p = os.path.join(ROOT, d)
        if p in sys.path:
            sys.path.remove(p)
        sys.path.insert(0, p)


setup()
