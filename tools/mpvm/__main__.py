"""python -m tools.mpvm {unix|wasm|cpython} SCRIPT [DIR ...] [--timeout S] [--heapsize N]"""

import sys

from .runner import main

sys.exit(main())
