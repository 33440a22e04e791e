"""The image, as far as this machine allows without a Docker engine: hadolint
accepts the Dockerfile, the image runs as a non-root user, and its install step works."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
DOCKERFILE = (ROOT / "Dockerfile").read_text()


def test_hadolint_accepts_the_dockerfile():
    done = subprocess.run([str(BIN / "hadolint"), str(ROOT / "Dockerfile")], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_image_runs_as_a_non_root_user_with_jitaccess_as_entrypoint():
    final = DOCKERFILE.split("FROM ")[-1]
    assert re.search(r"^USER 10001$", final, re.MULTILINE)
    assert 'ENTRYPOINT ["jitaccess"]' in final and "PYTHONDONTWRITEBYTECODE=1" in final


def test_the_install_step_of_the_image_works_in_a_fresh_virtualenv(tmp_path):
    """`pip install --prefix=/install .` as in the build stage (dependencies come from the test venv's
    own install; what this proves is that the package builds and installs its entry points)."""
    subprocess.run([sys.executable, "-m", "venv", str(tmp_path / "venv")], check=True)
    pip = tmp_path / "venv" / "bin" / "pip"
    # Build isolation, as in the image: pip fetches the build backend pyproject.toml asks for.
    done = subprocess.run(
        [str(pip), "install", "--quiet", "--no-deps", f"--prefix={tmp_path / 'install'}", str(ROOT)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    installed = tmp_path / "install"
    assert (installed / "bin" / "jitaccess").exists() and (installed / "bin" / "kubectl-jit").exists()
    assert list(installed.glob("lib/python3*/site-packages/jitaccess/controller/reconciler.py"))
