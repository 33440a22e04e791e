"""The IAP audience, found at start: the backend service GKE made for the console's Service.

IAP signs for `/projects/NUMBER/global/backendServices/ID`, and the ID exists only once the load
balancer does, after the manifests are applied. Rather than a second `terraform apply` with that ID,
the console lists the project's backend services (Compute Engine API, read-only) and takes the one
GKE's Ingress controller describes as serving NAMESPACE/SERVICE: it writes
`{"kubernetes.io/service-name": "NAMESPACE/SERVICE", "kubernetes.io/service-port": "80"}` as the
backend service's description. Until it exists the console verifies nobody (503), and keeps looking.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator, Mapping
from typing import Any

import google.auth
import google.auth.exceptions
from google.auth.credentials import AnonymousCredentials, Credentials
from google.auth.transport.requests import AuthorizedSession

COMPUTE = "https://compute.googleapis.com"
SCOPE = "https://www.googleapis.com/auth/compute.readonly"
log = logging.getLogger(__name__)


class NotYet(Exception):
    """No backend service serves the Service yet (the load balancer is still being made)."""


class Ambiguous(Exception):
    """More than one backend service says it serves the Service: which one IAP signs for is unknown."""


def audience_of(project_number: str, backend_service_id: str) -> str:
    return f"/projects/{project_number}/global/backendServices/{backend_service_id}"


def serves(item: Mapping[str, Any], service: str) -> bool:
    """Does this backend service (an item of the list) say it serves NAMESPACE/SERVICE?"""
    try:
        description = json.loads(str(item.get("description") or ""))
    except ValueError:
        return False
    return isinstance(description, dict) and description.get("kubernetes.io/service-name") == service


def _credentials(endpoint: str) -> Credentials:
    """Anonymous for a local emulator (http://), else the pod's (Workload Identity) or the user's."""
    if endpoint.startswith("http://"):
        return AnonymousCredentials()
    credentials, _ = google.auth.default(scopes=[SCOPE])
    return credentials


def _pages(session: AuthorizedSession, url: str) -> Iterator[Mapping[str, Any]]:
    token = None
    while True:
        answer = session.get(url, params={"pageToken": token} if token else None, timeout=30)
        if answer.status_code != 200:
            raise RuntimeError(f"listing backend services: HTTP {answer.status_code} from {url}")
        page = answer.json()
        yield from page.get("items") or ()
        token = page.get("nextPageToken")
        if not token:
            return


def backend_service_id(project: str, service: str, endpoint: str = COMPUTE) -> str:
    """The ID of the one backend service of `project` that serves `service` (NAMESPACE/NAME)."""
    url = f"{endpoint.rstrip('/')}/compute/v1/projects/{project}/global/backendServices"
    session = AuthorizedSession(_credentials(endpoint))
    try:
        found = [item for item in _pages(session, url) if serves(item, service)]
    finally:
        session.close()
    if not found:
        raise NotYet(f"no backend service of project {project} serves {service} yet")
    if len(found) > 1:
        names = ", ".join(str(item.get("name")) for item in found)
        raise Ambiguous(
            f"several backend services of project {project} serve {service} ({names}): give --iap-audience"
        )
    return str(found[0]["id"])


async def resolve_audience(
    project: str, project_number: str, service: str, endpoint: str = COMPUTE, pause_s: float = 10.0
) -> str:
    """The audience, once the backend service exists; asked again every `pause_s` until it does
    (or the API refuses, which is logged and asked again too: permissions are often granted late)."""
    while True:
        try:
            found = await asyncio.to_thread(backend_service_id, project, service, endpoint)
        except NotYet as why:
            log.info("%s; looking again in %.0fs", why, pause_s)
        except (RuntimeError, OSError, google.auth.exceptions.GoogleAuthError) as why:
            log.warning("could not list the backend services (%s); trying again in %.0fs", why, pause_s)
        else:
            audience = audience_of(project_number, found)
            log.info("IAP audience: %s", audience)
            return audience
        await asyncio.sleep(pause_s)
