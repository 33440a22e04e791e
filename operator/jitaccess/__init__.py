"""jitaccess: Just-In-Time privileged access to Google Cloud, as a Kubernetes operator."""

from importlib.metadata import PackageNotFoundError, version

try:
    # One source: pyproject.toml's [project] version, as installed (the image tag follows it).
    __version__ = version("jitaccess")
except PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0+unknown"
