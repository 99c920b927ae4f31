"""The test session's temporary CELLBENCH_HOME is removed when the session ends."""

import shutil
import subprocess
import sys
from pathlib import Path


def test_a_session_leaves_no_cellbench_home_behind(tmp_path):
    shutil.copy(Path(__file__).with_name("conftest.py"), tmp_path / "conftest.py")
    (tmp_path / "test_writes.py").write_text(
        "import os, pathlib\n"
        "def test_writes():\n"
        "    home = pathlib.Path(os.environ['CELLBENCH_HOME'])\n"
        "    (home / 'screens').mkdir()\n"
        "    (home / 'screens' / 'x.npy').write_bytes(b'1')\n"
        "    print('HOME=' + str(home))\n"
    )
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", str(tmp_path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    home = Path(
        next(line for line in out.stdout.splitlines() if "HOME=" in line).split("HOME=", 1)[1]
    )
    assert home.name.startswith("cellbench-tests-")
    assert not home.exists()
