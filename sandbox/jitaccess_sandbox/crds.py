"""The CustomResourceDefinitions in crds/, loaded once: the single source of the API's schema."""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml


@dataclass(frozen=True)
class Crd:
    group: str
    version: str
    plural: str
    singular: str
    kind: str
    namespaced: bool
    short_names: tuple[str, ...]
    categories: tuple[str, ...]
    schema: dict[str, Any]
    printer_columns: tuple[dict[str, Any], ...]
    raw: dict[str, Any]


def crds_dir() -> Path:
    """crds/ of this checkout (or of the image, via JITACCESS_CRDS_DIR)."""
    configured = os.environ.get("JITACCESS_CRDS_DIR")
    if configured:
        return Path(configured)
    return Path(__file__).resolve().parents[2] / "crds"


@cache
def load_crds(directory: Path | None = None) -> tuple[Crd, ...]:
    found = []
    for path in sorted((directory or crds_dir()).glob("*.yaml")):
        raw = yaml.safe_load(path.read_text())
        if not isinstance(raw, dict) or raw.get("kind") != "CustomResourceDefinition":
            continue  # e.g. the kustomization that lists them
        spec = raw["spec"]
        version = next(v for v in spec["versions"] if v.get("storage"))
        names = spec["names"]
        found.append(
            Crd(
                group=spec["group"],
                version=version["name"],
                plural=names["plural"],
                singular=names["singular"],
                kind=names["kind"],
                namespaced=spec["scope"] == "Namespaced",
                short_names=tuple(names.get("shortNames", ())),
                categories=tuple(names.get("categories", ())),
                schema=version["schema"]["openAPIV3Schema"],
                printer_columns=tuple(version.get("additionalPrinterColumns", ())),
                raw=raw,
            )
        )
    if not found:
        raise FileNotFoundError(f"no CRDs found in {directory or crds_dir()}; set JITACCESS_CRDS_DIR")
    return tuple(found)
