"""Compute Engine's `backendServices.list` (global), the one Compute call jitaccess makes: the console
finds its IAP audience by listing its project's backend services and taking the one GKE's Ingress
controller describes as serving its Service (`{"kubernetes.io/service-name": "NS/NAME", ...}`).

As the real API: GET /compute/v1/projects/{project}/global/backendServices, `maxResults` (default
500) and `pageToken` paging, `nextPageToken` while more remain, a `compute#backendServiceList`
envelope, numeric string IDs, and a 404 in Compute's error shape for a project it does not know.
A project is known by its ID or its number. POST /_emulator/backendServices adds one.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

_ids = itertools.count(4_611_686_018_427_387_904)  # IDs are uint64 in decimal, as Compute's


@dataclass
class BackendServices:
    items: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # by project ID
    numbers: dict[str, str] = field(default_factory=dict)  # project number -> ID
    listed: int = 0  # list calls served

    def add_project(self, project: str, number: str) -> None:
        self.items.setdefault(project, [])
        self.numbers[number] = project

    def add(self, project: str, name: str, service: str | None = None, port: str = "80") -> dict[str, Any]:
        """A backend service of `project`; with `service` (NS/NAME), described as GKE's Ingress describes it."""
        description = (
            json.dumps({"kubernetes.io/service-name": service, "kubernetes.io/service-port": port})
            if service
            else ""
        )
        item = {
            "kind": "compute#backendService",
            "id": str(next(_ids)),
            "name": name,
            "description": description,
            "protocol": "HTTP",
            "loadBalancingScheme": "EXTERNAL_MANAGED",
            "selfLink": f"https://www.googleapis.com/compute/v1/projects/{project}/global/backendServices/{name}",
        }
        self.items.setdefault(project, []).append(item)
        return item

    def project(self, name: str) -> str | None:
        project = self.numbers.get(name, name)
        return project if project in self.items else None


def _error(status: int, message: str, reason: str) -> web.Response:
    body = {
        "error": {
            "code": status,
            "message": message,
            "errors": [{"message": message, "domain": "global", "reason": reason}],
        }
    }
    return web.json_response(body, status=status)


def add_routes(app: web.Application, services: BackendServices) -> None:
    async def listing(request: web.Request) -> web.Response:
        asked = request.match_info["project"]
        project = services.project(asked)
        if project is None:
            return _error(404, f"The resource 'projects/{asked}' was not found", "notFound")
        services.listed += 1
        try:
            size = min(int(request.query.get("maxResults", "500")), 500)
            start = int(request.query.get("pageToken") or 0)
        except ValueError:
            return _error(400, "Invalid value for field 'pageToken' or 'maxResults'", "invalid")
        items = services.items[project]
        page: dict[str, Any] = {
            "kind": "compute#backendServiceList",
            "id": f"projects/{project}/global/backendServices",
            "items": items[start : start + size],
            "selfLink": f"https://www.googleapis.com/compute/v1/projects/{project}/global/backendServices",
        }
        if start + size < len(items):
            page["nextPageToken"] = str(start + size)
        return web.json_response(page)

    async def adding(request: web.Request) -> web.Response:
        data = await request.json()
        if "number" in data:
            services.add_project(str(data["project"]), str(data["number"]))
        item = services.add(
            str(data["project"]), str(data["name"]), data.get("service"), str(data.get("port", "80"))
        )
        return web.json_response(item)

    app.router.add_get("/compute/v1/projects/{project}/global/backendServices", listing)
    app.router.add_post("/_emulator/backendServices", adding)
