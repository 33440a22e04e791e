"""Read and write allow policies through google-cloud-resource-manager (the only caller of it).

REST transport, synchronous client (the v3 library has no async REST transport), called from
the event loop through `asyncio.to_thread`. An `http://` endpoint (the emulator) is spoken to
with anonymous credentials; anything else uses Application Default Credentials (on GKE:
Workload Identity). The library's own retries are turned off: `writer` owns every retry,
because a retried write must be a fresh read-modify-write, never a re-sent body.
"""

from __future__ import annotations

from typing import Any

from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials, Credentials
from google.cloud import resourcemanager_v3
from google.iam.v1 import iam_policy_pb2, policy_pb2

POLICY_VERSION = 3
TIMEOUT_S = 30.0


class PolicyStore:
    """Get and set the IAM policy of projects/…, folders/… and organizations/…."""

    def __init__(self, endpoint: str | None = None, credentials: Credentials | None = None) -> None:
        if credentials is None and endpoint and endpoint.startswith("http://"):
            credentials = AnonymousCredentials()
        options = ClientOptions(api_endpoint=endpoint) if endpoint else None
        common: dict[str, Any] = {"transport": "rest", "client_options": options, "credentials": credentials}
        self._clients: dict[str, Any] = {
            "projects": resourcemanager_v3.ProjectsClient(**common),
            "folders": resourcemanager_v3.FoldersClient(**common),
            "organizations": resourcemanager_v3.OrganizationsClient(**common),
        }
        self.endpoint = endpoint or "https://cloudresourcemanager.googleapis.com"

    def get(self, resource: str) -> policy_pb2.Policy:
        request = iam_policy_pb2.GetIamPolicyRequest(
            resource=resource, options={"requested_policy_version": POLICY_VERSION}
        )
        return self._client(resource).get_iam_policy(request=request, retry=None, timeout=TIMEOUT_S)

    def bindings(self, resource: str) -> list[dict[str, Any]]:
        """The policy's bindings as plain data (role, members, condition or None): what the pure
        core (drift, the importer) reads, so that no protobuf leaves this package."""
        return [
            {
                "role": binding.role,
                "members": list(binding.members),
                "condition": {
                    "title": binding.condition.title,
                    "description": binding.condition.description,
                    "expression": binding.condition.expression,
                }
                if binding.HasField("condition")
                else None,
            }
            for binding in self.get(resource).bindings
        ]

    def set(self, resource: str, policy: policy_pb2.Policy) -> policy_pb2.Policy:
        policy.version = POLICY_VERSION
        request = iam_policy_pb2.SetIamPolicyRequest(resource=resource, policy=policy)
        return self._client(resource).set_iam_policy(request=request, retry=None, timeout=TIMEOUT_S)

    def _client(self, resource: str) -> Any:
        kind = resource.partition("/")[0]
        if kind not in self._clients:
            raise ValueError(f"{resource} is not a project, folder or organization")
        return self._clients[kind]
