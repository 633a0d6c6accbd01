"""The fixtures of real servers and clusters fail, never skip, when what they need is not
installed: a skip would let CI pass without running the tests that need them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

TESTS_DIR = Path(__file__).resolve().parent

CONFTEST = f"""
import sys

sys.path.insert(0, {str(TESTS_DIR)!r})
# an entry of None makes `import` raise ImportError: as if the package were not installed
for name in ("llama_cpp", "llama_cpp.server", "ray"):
    sys.modules[name] = None
from _fx_llama import llama_server  # noqa: E402,F401
from _fx_ray import ray_cluster  # noqa: E402,F401
"""

TESTS = """
def test_needs_llama(llama_server):
    pass


def test_needs_ray(ray_cluster):
    pass
"""


def test_llama_and_ray_fixtures_fail_with_the_install_command_when_missing(tmp_path):
    (tmp_path / "conftest.py").write_text(CONFTEST)
    (tmp_path / "test_missing.py").write_text(TESTS)
    r = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider", str(tmp_path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = r.stdout + r.stderr
    assert r.returncode != 0, out
    assert "2 errors" in out and "skipped" not in out, out
    assert "llama-cpp-python[server] 0.3.36" in out and "llama_cpp.server cannot be imported" in out
    assert "Ray (pip install 'iro-bb[ray]')" in out
    assert out.count("bash scripts/setup.sh all") >= 2, out
    assert "Traceback" not in out, out  # one line each, no traceback
