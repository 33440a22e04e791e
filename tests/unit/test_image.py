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


def build_steps() -> list[list[str]]:
    """The build stage's `RUN pip install ...` commands, as the Dockerfile says them."""
    build = DOCKERFILE.split("FROM ")[1]
    return [
        line.removeprefix("RUN ").split() for line in build.splitlines() if line.startswith("RUN pip install")
    ]


def test_the_image_takes_its_base_by_digest_and_its_dependencies_by_hash():
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.11-slim@sha256:[0-9a-f]{64}$", DOCKERFILE, re.MULTILINE)
    assert all(
        line == "FROM ${PYTHON_IMAGE}" or line.startswith("FROM ${PYTHON_IMAGE} AS ")
        for line in DOCKERFILE.splitlines()
        if line.startswith("FROM ")
    )
    lock_step, package_step = build_steps()
    assert "--require-hashes" in lock_step and "requirements/operator.txt" in lock_step
    assert "--no-deps" in package_step  # nothing unhashed comes in with the package


def test_the_image_install_works_in_a_fresh_virtualenv_and_holds_no_sandbox(tmp_path):
    """The build stage's two steps, run as written (from the index this machine has): the locked
    dependencies by hash, then the package. The sandbox, the emulator and test tools stay out."""
    subprocess.run([sys.executable, "-m", "venv", str(tmp_path / "venv")], check=True)
    prefix = tmp_path / "install"
    for step in build_steps():
        # --no-compile: bytecode is CPU this test has no use for (pip never fails an install
        # over it, and nothing here reads a .pyc).
        command = [str(tmp_path / "venv" / "bin" / "pip"), *step[1:], "--no-compile"]
        command = [f"--prefix={prefix}" if part == "--prefix=/install" else part for part in command]
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-2000:]
    site = next(prefix.glob("lib/python3*/site-packages"))
    assert (prefix / "bin" / "jitaccess").exists() and (prefix / "bin" / "kubectl-jit").exists()
    assert (site / "jitaccess" / "controller" / "reconciler.py").exists()
    present = {path.name.lower() for path in site.iterdir()}
    for absent in ("jitaccess_sandbox", "jitaccess_emulator", "kmock", "pytest", "aiosmtpd", "hypothesis"):
        assert not any(name.startswith(absent) for name in present), absent
    # `jitaccess sandbox` in the image says what to install instead of a traceback.
    env = {"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [str(tmp_path / "venv" / "bin" / "python"), str(prefix / "bin" / "jitaccess"), "sandbox"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert done.returncode != 0 and "the sandbox is not installed" in done.stderr
    assert "Traceback" not in done.stderr
