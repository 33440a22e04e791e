"""Release artefacts: one version (pyproject.toml) that everything else shows, the files a user
and a security team look for, and `make release` rendering one install.yaml per version."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import tarfile
import tomllib
from pathlib import Path

import yaml

from jitaccess import __version__
from jitaccess.cli import parser

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


def test_the_version_has_one_source_and_everything_shows_it():
    assert __version__ == VERSION
    sandbox = tomllib.loads((ROOT / "sandbox" / "pyproject.toml").read_text())["project"]["version"]
    assert sandbox == VERSION  # released together
    (image,) = yaml.safe_load((ROOT / "manifests" / "kustomization.yaml").read_text())["images"]
    assert image["newTag"] == VERSION
    assert f"## [{VERSION}]" in (ROOT / "CHANGELOG.md").read_text()
    done = subprocess.run([str(BIN / "jitaccess"), "--version"], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == f"jitaccess {VERSION}"
    assert parser().prog == "jitaccess"


def test_the_files_a_new_user_and_a_security_team_look_for_are_there():
    license_text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in license_text and "Version 2.0, January 2004" in license_text
    assert tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["license"] == "Apache-2.0"
    security = (ROOT / "SECURITY.md").read_text()
    assert "Reporting a vulnerability" in security and "In scope" in security and "Out of scope" in security
    contributing = (ROOT / "CONTRIBUTING.md").read_text()
    assert "make demo" in contributing and "make test" in contributing
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert "## [Unreleased]" in changelog and "keepachangelog.com" in changelog
    # Each released version has a section with a date, newest first.
    versions = re.findall(r"^## \[(\d+\.\d+\.\d+)\] - \d{4}-\d{2}-\d{2}$", changelog, re.MULTILINE)
    assert versions[0] == VERSION and versions == sorted(
        versions, key=lambda v: tuple(map(int, v.split("."))), reverse=True
    )


def test_make_release_renders_one_install_yaml_for_the_version(tmp_path):
    # With the tools of the environment running the tests (no .venv of its own to make first).
    done = subprocess.run(
        ["make", "-s", "release", f"BIN={BIN}", "STAMP="], cwd=ROOT, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
    install = ROOT / "dist" / f"install-{VERSION}.yaml"
    objects = [o for o in yaml.safe_load_all(install.read_text()) if o]
    kinds = {o["kind"] for o in objects}
    assert {"CustomResourceDefinition", "Deployment", "ClusterRole", "MutatingWebhookConfiguration"} <= kinds
    (deployment,) = [o for o in objects if o["kind"] == "Deployment"]
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"].endswith(f"/jitaccess:{VERSION}")
    assert (ROOT / "dist" / f"jitaccess-{VERSION}-py3-none-any.whl").exists()
    # kubectl jit for krew: the manifest names the archive built, by its digest.
    archive = ROOT / "dist" / f"kubectl-jit-{VERSION}.tar.gz"
    krew = yaml.safe_load((ROOT / "dist" / "krew-jit.yaml").read_text())
    (platform,) = krew["spec"]["platforms"]
    assert platform["sha256"] == hashlib.sha256(archive.read_bytes()).hexdigest()
    assert platform["uri"].endswith(archive.name)
    # Unpacked as krew does, the launcher installs the wheel it carries and runs it.
    unpacked = tmp_path / "krew"
    with tarfile.open(archive) as bundle:
        bundle.extractall(unpacked, filter="data")
    # As on a user's machine: nothing of this source tree on the path. PIP_COMPILE=0: the
    # launcher's pip install without bytecode, CPU this test has no use for.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
        "PIP_COMPILE": "0",
    }
    ran = subprocess.run(
        [str(unpacked / "kubectl-jit"), "--version"], capture_output=True, text=True, env=env
    )
    assert ran.returncode == 0 and VERSION in ran.stdout + ran.stderr, ran.stderr[-2000:]


def test_the_image_lock_pins_every_dependency_with_hashes_and_agrees_with_pyproject():
    lock = (ROOT / "requirements" / "operator.txt").read_text()
    pinned = dict(re.findall(r"^([a-z0-9][a-z0-9._-]*)==([^ \\\n]+)", lock, re.MULTILINE))
    for requirement in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]:
        name, version = requirement.split("==")
        assert pinned.get(name.lower().replace("_", "-")) == version, f"{name}: run make lock"
    blocks = re.split(r"\n(?=[a-z0-9])", lock)
    assert all("--hash=sha256:" in block for block in blocks if re.match(r"[a-z0-9]", block))
    for test_only in ("pytest", "kmock", "aiosmtpd", "ruff"):
        assert test_only not in pinned, f"{test_only} is not the image's"
