"""Where a process finds its cluster: in-cluster credentials in a Pod, else a kubeconfig. Shared by
the operator and the console, which talk to the same API with different clients."""

from __future__ import annotations

from pathlib import Path

from kubernetes import client, config


def kubernetes_configuration(
    kubeconfig: Path | None = None, context: str | None = None
) -> client.Configuration:
    """In-cluster credentials when running in a Pod, else the kubeconfig (KUBECONFIG or ~/.kube/config)."""
    configuration = client.Configuration()
    if kubeconfig is None and context is None:
        try:
            config.load_incluster_config(client_configuration=configuration)
            return configuration
        except config.ConfigException:
            pass
    config.load_kube_config(
        config_file=str(kubeconfig) if kubeconfig else None,
        context=context,
        client_configuration=configuration,
    )
    return configuration
