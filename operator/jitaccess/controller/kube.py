"""The operator's writes to Kubernetes, through the official client (called off the event loop)."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from typing import Any

from kubernetes import client
from kubernetes.client.rest import ApiException

from jitaccess.api.bodies import metadata_of
from jitaccess.api.objects import GROUP, VERSION
from jitaccess.api.times import format_time
from jitaccess.clock import Clock
from jitaccess.policy.steps import Event

log = logging.getLogger(__name__)
REQUESTS = "activationrequests"
GRANTS = "eligiblegrants"


class Kube:
    def __init__(self, api_client: client.ApiClient, clock: Clock) -> None:
        self.api_client = api_client
        self.custom = client.CustomObjectsApi(api_client)
        self.core = client.CoreV1Api(api_client)
        self.authorization = client.AuthorizationV1Api(api_client)
        self.authentication = client.AuthenticationV1Api(api_client)
        self.clock = clock
        self.instance = socket.gethostname()
        self.calls = 0

    async def patch_request_status(
        self, namespace: str, name: str, status: dict[str, Any]
    ) -> dict[str, Any] | None:
        return await self._patch_status(REQUESTS, namespace, name, status)

    async def get_request(self, namespace: str, name: str) -> dict[str, Any] | None:
        return await self._call(
            self.custom.get_namespaced_custom_object, GROUP, VERSION, namespace, REQUESTS, name
        )

    async def patch_request(self, namespace: str, name: str, patch: dict[str, Any]) -> dict[str, Any] | None:
        return await self._call(
            self.custom.patch_namespaced_custom_object, GROUP, VERSION, namespace, REQUESTS, name, patch
        )

    async def delete_request(self, namespace: str, name: str) -> None:
        await self._call(
            self.custom.delete_namespaced_custom_object, GROUP, VERSION, namespace, REQUESTS, name
        )

    async def patch_grant_status(self, name: str, status: dict[str, Any]) -> dict[str, Any] | None:
        return await self._call(
            self.custom.patch_cluster_custom_object_status, GROUP, VERSION, GRANTS, name, {"status": status}
        )

    async def patch_approval(self, namespace: str, name: str, patch: dict[str, Any]) -> dict[str, Any] | None:
        return await self._call(
            self.custom.patch_namespaced_custom_object,
            GROUP,
            VERSION,
            namespace,
            "activationapprovals",
            name,
            patch,
        )

    async def create_approval(
        self, namespace: str, body: dict[str, Any]
    ) -> tuple[dict[str, Any] | None, str]:
        """File an ActivationApproval; (None, the API server's reason) when it is refused."""
        try:
            created = await self._call(
                self.custom.create_namespaced_custom_object,
                GROUP,
                VERSION,
                namespace,
                "activationapprovals",
                body,
            )
        except ApiException as error:
            return None, _reason(error)
        return created, ""

    async def patch_approval_status(
        self, namespace: str, name: str, status: dict[str, Any]
    ) -> dict[str, Any] | None:
        return await self._patch_status("activationapprovals", namespace, name, status)

    async def _patch_status(
        self, plural: str, namespace: str, name: str, status: dict[str, Any]
    ) -> dict[str, Any] | None:
        method = self.custom.patch_namespaced_custom_object_status
        return await self._call(method, GROUP, VERSION, namespace, plural, name, {"status": status})

    async def may(
        self,
        user: str,
        groups: list[str],
        uid: str,
        extra: dict[str, Any],
        verb: str,
        namespace: str,
        name: str,
    ) -> bool:
        """Does RBAC let `user` do `verb` on this ActivationRequest? (a SubjectAccessReview)"""
        review = client.V1SubjectAccessReview(
            spec=client.V1SubjectAccessReviewSpec(
                user=user,
                groups=groups or None,
                uid=uid or None,
                extra=extra or None,
                resource_attributes=client.V1ResourceAttributes(
                    group=GROUP,
                    version=VERSION,
                    resource=REQUESTS,
                    verb=verb,
                    namespace=namespace,
                    name=name,
                ),
            )
        )
        answer = await self._call(self.authorization.create_subject_access_review, review)
        return bool(answer is not None and answer.status is not None and answer.status.allowed)

    async def who_am_i(self) -> str:
        """The username the API server knows this client as (a SelfSubjectReview)."""
        answer = await self._call(
            self.authentication.create_self_subject_review, client.V1SelfSubjectReview()
        )
        return str(answer.status.user_info.username)

    async def get_grant(self, name: str) -> dict[str, Any] | None:
        return await self._call(self.custom.get_cluster_custom_object, GROUP, VERSION, GRANTS, name)

    async def list_requests(self) -> list[dict[str, Any]]:
        found = await self._call(self.custom.list_cluster_custom_object, GROUP, VERSION, REQUESTS)
        return list((found or {}).get("items", []))

    async def list_approvals(self, namespace: str) -> list[dict[str, Any]]:
        found = await self._call(
            self.custom.list_namespaced_custom_object, GROUP, VERSION, namespace, "activationapprovals"
        )
        return list((found or {}).get("items", []))

    async def list_grants(self) -> list[dict[str, Any]]:
        found = await self._call(self.custom.list_cluster_custom_object, GROUP, VERSION, GRANTS)
        return list((found or {}).get("items", []))

    async def post_event(self, body: dict[str, Any], event: Event) -> None:
        """Record an Event on the object; losing one is logged, never fatal."""
        metadata = metadata_of(body)
        namespace = metadata.get("namespace") or "default"
        now = format_time(self.clock.now())
        event_body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{metadata.get('name')}.", "namespace": namespace},
            "involvedObject": {
                "apiVersion": body.get("apiVersion"),
                "kind": body.get("kind"),
                "name": metadata.get("name"),
                "namespace": metadata.get("namespace"),
                "uid": metadata.get("uid"),
            },
            "reason": event.reason,
            "message": event.message[:1024],
            "type": event.type,
            "source": {"component": "jitaccess"},
            "reportingComponent": "jitaccess",
            "reportingInstance": self.instance,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        try:
            # The answer is not read: skip building the client's V1Event model from it.
            await self._call(self._create_event, namespace, event_body)
        except ApiException as error:
            log.warning("could not post Event %s on %s: %s", event.reason, metadata.get("name"), error.reason)

    def _create_event(self, namespace: str, body: dict[str, Any]) -> None:
        self.core.create_namespaced_event(namespace, body, _preload_content=False).release_conn()

    async def _call(self, method: Any, *args: Any) -> Any:
        self.calls += 1
        try:
            return await asyncio.to_thread(method, *args)
        except ApiException as error:
            if error.status == 404:
                return None
            raise


def _reason(error: ApiException) -> str:
    """The message of a refusal, as the API server (or a webhook through it) worded it."""
    try:
        message = json.loads(error.body or "{}").get("message")
    except (ValueError, AttributeError):
        message = None
    return str(message or error.reason or f"HTTP {error.status}")
