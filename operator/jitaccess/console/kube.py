"""The console's Kubernetes client: list, watch, get, create and patch over aiohttp, with the
credentials `kubeconfig.kubernetes_configuration` finds (the console's own service account in a Pod).

Asynchronous because the console follows four watches and serves long-lived event streams on one
event loop; the operator's clients (kopf, the official client in threads) are not needed here.
Nothing in this module decides anything: `KubeError` carries the API server's status and message
(an admission refusal's words go to the person unchanged).
"""

from __future__ import annotations

import json
import ssl
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp
from kubernetes import client

from jitaccess.api.objects import GROUP, VERSION

API = f"/apis/{GROUP}/{VERSION}"
MERGE_PATCH = "application/merge-patch+json"
WATCH_TIMEOUT_S = 300  # a watch is opened again from where it was after this (as informers do)


class KubeError(Exception):
    def __init__(self, status: int, message: str, reason: str = "") -> None:
        super().__init__(message)
        self.status, self.message, self.reason = status, message, reason


def collection(plural: str, namespace: str | None = None, group: str = API) -> str:
    """The path of a resource's objects: in one namespace, or in all when `namespace` is None."""
    scope = f"/namespaces/{namespace}" if namespace else ""
    return f"{group}{scope}/{plural}"


def _ssl_context(configuration: client.Configuration) -> ssl.SSLContext | bool:
    if not configuration.verify_ssl:
        return False
    context = ssl.create_default_context(cafile=configuration.ssl_ca_cert or None)
    if configuration.cert_file:
        context.load_cert_chain(configuration.cert_file, configuration.key_file)
    return context


class Kube:
    def __init__(self, configuration: client.Configuration) -> None:
        self.configuration = configuration
        self.base = str(configuration.host).rstrip("/")
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=_ssl_context(self.configuration)),
                timeout=aiohttp.ClientTimeout(total=None, connect=30, sock_read=None),
            )
        return self._session

    def _headers(self, content_type: str | None = None) -> dict[str, str]:
        # The hook (in-cluster) reads the service account's token again before it expires.
        token = self.configuration.get_api_key_with_prefix("BearerToken", alias="authorization")
        headers = {"Accept": "application/json"}
        if token:
            headers["Authorization"] = token
        if content_type:
            headers["Content-Type"] = content_type
        return headers

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _call(
        self, method: str, path: str, body: Any = None, params: Mapping[str, str] | None = None, **kwargs: Any
    ) -> dict[str, Any]:
        data = json.dumps(body).encode() if body is not None else None
        async with self.session.request(
            method,
            self.base + path,
            data=data,
            params=params,
            headers=self._headers(kwargs.get("content_type") or ("application/json" if data else None)),
            timeout=aiohttp.ClientTimeout(total=30),
        ) as answer:
            text = await answer.text()
            document = _parsed(text)
            if answer.status >= 400:
                raise KubeError(
                    answer.status,
                    str(document.get("message") or text[:300] or answer.reason),
                    str(document.get("reason") or ""),
                )
            return document

    async def list(self, path: str, params: Mapping[str, str] | None = None) -> dict[str, Any]:
        return await self._call("GET", path, params=params)

    async def get(self, path: str) -> dict[str, Any] | None:
        try:
            return await self._call("GET", path)
        except KubeError as error:
            if error.status == 404:
                return None
            raise

    async def create(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return await self._call("POST", path, body)

    async def patch(self, path: str, patch: Mapping[str, Any]) -> dict[str, Any]:
        return await self._call("PATCH", path, patch, content_type=MERGE_PATCH)

    async def watch(
        self, path: str, resource_version: str, params: Mapping[str, str] | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        """The watch events of `path` after `resource_version`, until the server ends the stream.
        A 410 (too old) comes as an ERROR event, as the API server sends it."""
        query = {
            **(params or {}),
            "watch": "true",
            "resourceVersion": resource_version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(WATCH_TIMEOUT_S),
        }
        async with self.session.get(self.base + path, params=query, headers=self._headers()) as answer:
            if answer.status >= 400:
                document = _parsed(await answer.text())
                raise KubeError(answer.status, str(document.get("message") or answer.reason))
            pending = b""  # one event a line, of any length (a request may carry 32 KiB of annotations)
            async for chunk in answer.content.iter_any():
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    if event := _parsed(line.decode()):
                        yield event


def _parsed(text: str) -> dict[str, Any]:
    try:
        document = json.loads(text) if text else {}
    except ValueError:
        return {}
    return document if isinstance(document, dict) else {}
