"""host_tests/mp/ holds MicroPython test modules, run on real MicroPython interpreters through
host_tests/mpvm_pytest.py (tools/mpvm), never collected by pytest as CPython tests."""

collect_ignore_glob = ["*.py"]
