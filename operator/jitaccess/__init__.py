"""jitaccess: Just-In-Time privileged access to Google Cloud, as a Kubernetes operator."""

from importlib.metadata import PackageNotFoundError, version


def _installed_version() -> str:
    """One source: pyproject.toml's [project] version, as installed (the image tag follows it);
    the plugin alone is the kubectl-jit distribution, built from the same source."""
    for distribution in ("jitaccess", "kubectl-jit"):
        try:
            return version(distribution)
        except PackageNotFoundError:
            continue
    return "0+unknown"  # run from a source tree that was never installed


__version__ = _installed_version()
