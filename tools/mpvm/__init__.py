"""Run Python files on real MicroPython interpreters from CPython (host tests, tools).

    from tools.mpvm import run, available, VmUnavailable
    result = run("unix", "script.py", ["firmware", "boards"], timeout=60, heapsize="64K")

See runner.py and docs/micropython_vm.md.
"""

from .runner import INTERPRETERS, Result, VmUnavailable, available, run

__all__ = ["INTERPRETERS", "Result", "VmUnavailable", "available", "run"]
