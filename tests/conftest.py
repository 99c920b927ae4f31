"""Test-wide setup: every test writes its cache under one temporary CELLBENCH_HOME.

Generated tiny screens are shared by the tests of one session (they are cached by
configuration hash), and nothing is ever written to the user's ~/.cache.
"""

import os
import tempfile

os.environ["CELLBENCH_HOME"] = tempfile.mkdtemp(prefix="cellbench-tests-")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMP_NUM_THREADS", "2")
