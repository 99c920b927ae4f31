"""Test-wide setup: every test writes its cache under one temporary CELLBENCH_HOME.

Generated tiny screens are shared by the tests of one session (they are cached by
configuration hash), and nothing is ever written to the user's ~/.cache. The folder is
removed when the session ends, so runs leave nothing behind in the temporary directory.
"""

import os
import shutil
import tempfile

_HOME = tempfile.mkdtemp(prefix="cellbench-tests-")
os.environ["CELLBENCH_HOME"] = _HOME
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMP_NUM_THREADS", "2")


def pytest_sessionfinish(session, exitstatus):
    """Remove this session's CELLBENCH_HOME (and the screens cached in it)."""
    shutil.rmtree(_HOME, ignore_errors=True)
