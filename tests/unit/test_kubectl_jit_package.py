"""`kubectl jit` alone: the kubectl-jit distribution installs in a fresh virtualenv without the
operator's weight (kopf, the Google clients, grpc) and works there."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


def test_the_plugin_installs_alone_and_light(tmp_path):
    subprocess.run([sys.executable, "-m", "venv", str(tmp_path / "venv")], check=True)
    bin_ = tmp_path / "venv" / "bin"
    done = subprocess.run(
        # --no-compile: bytecode (of kubernetes' thousands of model files) is CPU this test has no
        # use for; pip never fails an install over it.
        [str(bin_ / "pip"), "install", "--quiet", "--no-compile", str(ROOT / "kubectl-jit")],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    listed = subprocess.run(
        [str(bin_ / "pip"), "list", "--format=freeze"], capture_output=True, text=True, check=True
    )
    installed = {line.split("==")[0].lower() for line in listed.stdout.splitlines()}
    assert "kubectl-jit" in installed and "kubernetes" in installed
    # (aiohttp comes with kubernetes itself.)
    heavy = {"kopf", "grpcio", "google-cloud-resource-manager", "google-api-core", "slack-sdk", "cloudevents"}
    assert not installed & heavy, installed & heavy
    version = subprocess.run([str(bin_ / "kubectl-jit"), "--version"], capture_output=True, text=True)
    assert version.returncode == 0 and VERSION in version.stdout + version.stderr
    completion = subprocess.run(
        [str(bin_ / "kubectl-jit"), "completion", "bash"], capture_output=True, text=True
    )
    assert completion.returncode == 0 and "complete" in completion.stdout
    assert (bin_ / "kubectl_complete-jit").exists()


def test_the_plugin_is_released_with_the_operator():
    plugin = tomllib.loads((ROOT / "kubectl-jit" / "pyproject.toml").read_text())["project"]
    operator = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert plugin["version"] == VERSION
    # Its pins are the operator's: one set of versions to test.
    pins = dict(requirement.split("==") for requirement in operator["dependencies"])
    assert all(pins.get(name) == pinned for name, pinned in (r.split("==") for r in plugin["dependencies"]))
