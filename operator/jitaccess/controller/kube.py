"""The operator's calls to Kubernetes.

The hot ones (a request's status and metadata patches, its reads, Events, grant and approval
patches) go over one aiohttp session on the event loop, as JSON in and out: through the official
client each cost a worker thread, its per-call validation and its HTTP stack, about half of the
operator's CPU per activation. The rest (lists, reviews, approvals created) use the official
client off the event loop. Both go where the same `kubernetes.client.Configuration` says, as it
says (token and its refresh hook, CA, client certificate, TLS server name, proxy), and both raise
the client's `ApiException` for what the API server refuses.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import ssl
from typing import Any
from urllib.parse import quote

import aiohttp
from kubernetes import client
from kubernetes.client.rest import ApiException, is_socks_proxy_url, should_bypass_proxies

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
        self.authorization = client.AuthorizationV1Api(api_client)
        self.authentication = client.AuthenticationV1Api(api_client)
        self.clock = clock
        self.instance = socket.gethostname()
        self.calls = 0
        self.http = KubeHttp(api_client.configuration)

    async def patch_request_status(
        self, namespace: str, name: str, status: dict[str, Any]
    ) -> dict[str, Any] | None:
        return await self._patch_status(REQUESTS, namespace, name, status)

    async def get_request(self, namespace: str, name: str) -> dict[str, Any] | None:
        return await self._send("GET", _path(REQUESTS, namespace, name))

    async def patch_request(self, namespace: str, name: str, patch: dict[str, Any]) -> dict[str, Any] | None:
        return await self._merge(_path(REQUESTS, namespace, name), patch)

    async def delete_request(self, namespace: str, name: str) -> None:
        await self._call(
            self.custom.delete_namespaced_custom_object, GROUP, VERSION, namespace, REQUESTS, name
        )

    async def patch_grant_status(self, name: str, status: dict[str, Any]) -> dict[str, Any] | None:
        return await self._merge(_path(GRANTS, None, name, "status"), {"status": status})

    async def patch_approval(self, namespace: str, name: str, patch: dict[str, Any]) -> dict[str, Any] | None:
        return await self._merge(_path("activationapprovals", namespace, name), patch)

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
        return await self._merge(_path(plural, namespace, name, "status"), {"status": status})

    async def _merge(self, path: str, patch: dict[str, Any]) -> dict[str, Any] | None:
        """A JSON merge patch; the object as stored after it, or None when it is gone."""
        return await self._send("PATCH", path, patch, "application/merge-patch+json")

    async def _send(
        self, method: str, path: str, body: Any = None, content_type: str = "application/json"
    ) -> dict[str, Any] | None:
        self.calls += 1
        return await self.http.call(method, path, body, content_type)

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
            await self._send("POST", f"/api/v1/namespaces/{quote(namespace)}/events", event_body)
        except ApiException as error:
            log.warning("could not post Event %s on %s: %s", event.reason, metadata.get("name"), error.reason)

    async def _call(self, method: Any, *args: Any) -> Any:
        self.calls += 1
        try:
            return await asyncio.to_thread(method, *args)
        except ApiException as error:
            if error.status == 404:
                return None
            raise


class KubeHttp:
    """JSON over HTTPS to the API server the configuration names, on the running event loop, as
    the official client would send it: its token (asked again every AUTH_REUSE_S, and at once on
    a 401, off the loop: an exec plugin may run), CA, client certificate, TLS server name and
    proxy. Any answer but 2xx and 404 is the client's ApiException; so is a connection that fails
    twice (status 0)."""

    AUTH_REUSE_S = 10.0

    def __init__(self, configuration: client.Configuration) -> None:
        self.configuration = configuration
        self._ssl: ssl.SSLContext | bool = _ssl_context(configuration)
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._authorization: str | None = None
        self._authorization_until = 0.0
        self._authorizing = asyncio.Lock()  # one refresh at a time: an exec plugin runs once (per loop)
        hostname = configuration.tls_server_name or configuration.assert_hostname
        self._request_options: dict[str, Any] = {"ssl": self._ssl}
        if isinstance(hostname, str) and hostname:
            self._request_options["server_hostname"] = hostname
        if configuration.proxy and not should_bypass_proxies(
            configuration.host, configuration.no_proxy or ""
        ):
            if is_socks_proxy_url(configuration.proxy):
                raise ValueError(f"a SOCKS proxy ({configuration.proxy}) is not supported; use an HTTP proxy")
            self._request_options["proxy"] = configuration.proxy
            self._request_options["proxy_headers"] = configuration.proxy_headers

    async def call(
        self, method: str, path: str, body: Any = None, content_type: str = "application/json"
    ) -> dict[str, Any] | None:
        """The answer's JSON; None for 404 (gone); any other error as the client's ApiException."""
        data = json.dumps(body) if body is not None else None
        session = self._session_here()
        refused: str | None = None
        for attempt in range(2):
            headers = {"Accept": "application/json", "Content-Type": content_type}
            authorization = await self._authorize(refused)
            if authorization:
                headers["Authorization"] = authorization
            try:
                async with session.request(
                    method,
                    self.configuration.host + path,
                    data=data,
                    headers=headers,
                    **self._request_options,
                ) as response:
                    status, reason, text = response.status, response.reason, await response.text()
            except (aiohttp.ClientError, TimeoutError) as error:
                if attempt == 0:  # a kept-alive connection the server had closed: once more
                    continue
                raise ApiException(status=0, reason=f"{type(error).__name__}: {error}") from error
            if status == 401 and attempt == 0:  # an expired token: asked for again, then once more
                refused = authorization
                continue
            if status == 404:
                return None
            if status >= 400:
                raise ApiException(status=status, reason=reason, body=text)
            try:
                return dict(json.loads(text)) if text else None
            except ValueError as error:  # not what an API server answers: a proxy's page, say
                raise ApiException(status=status, reason=f"an answer that is not JSON: {error}") from error
        raise AssertionError("unreachable")

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _authorize(self, refused: str | None = None) -> str | None:
        """The Authorization header: asked of the configuration when AUTH_REUSE_S passed, or when
        the API server refused `refused` and nobody has asked since; one asks at a time."""
        async with self._authorizing:
            now = asyncio.get_running_loop().time()
            if now >= self._authorization_until or (refused is not None and refused == self._authorization):
                configuration = self.configuration
                settings = (
                    await asyncio.to_thread(configuration.auth_settings)
                    if configuration.refresh_api_key_hook is not None
                    else configuration.auth_settings()
                )
                bearer = settings.get("BearerToken") or {}
                self._authorization = str(bearer["value"]) if bearer.get("value") else None
                self._authorization_until = now + self.AUTH_REUSE_S
            return self._authorization

    def _session_here(self) -> aiohttp.ClientSession:
        # A session and a lock belong to the loop they were used on: new ones for a new loop (a restart).
        loop = asyncio.get_running_loop()
        if self._session is None or self._session.closed or self._loop is not loop:
            self._loop = loop
            self._authorizing = asyncio.Lock()
            connector = aiohttp.TCPConnector(limit=self.configuration.connection_pool_maxsize or 100)
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=aiohttp.ClientTimeout(total=60)
            )
        return self._session


def _ssl_context(configuration: client.Configuration) -> ssl.SSLContext | bool:
    if not configuration.host.startswith("https:"):
        return False
    context = ssl.create_default_context(cafile=configuration.ssl_ca_cert or None)
    if not configuration.verify_ssl or configuration.assert_hostname is False:
        context.check_hostname = False
    if not configuration.verify_ssl:
        context.verify_mode = ssl.CERT_NONE
    if configuration.cert_file:
        context.load_cert_chain(configuration.cert_file, configuration.key_file)
    return context


def _path(plural: str, namespace: str | None, name: str, subresource: str = "") -> str:
    where = f"/namespaces/{quote(namespace, safe='')}" if namespace else ""
    tail = f"/{subresource}" if subresource else ""
    return f"/apis/{GROUP}/{VERSION}{where}/{plural}/{quote(name, safe='')}{tail}"


def _reason(error: ApiException) -> str:
    """The message of a refusal, as the API server (or a webhook through it) worded it."""
    try:
        message = json.loads(error.body or "{}").get("message")
    except (ValueError, AttributeError):
        message = None
    return str(message or error.reason or f"HTTP {error.status}")
