"""jitaccess: Just-In-Time privileged access to Google Cloud, as a Kubernetes operator."""

__version__ = "0.1.0"
