"""Start the whole sandbox in one event loop: Kubernetes API, IAM emulator, operator.

Used by `jitaccess sandbox`, by the integration tests and by the benchmarks, so that all three
exercise the same wiring. Everything listens on 127.0.0.1 and is spoken to over HTTP.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import logging
import os
import secrets
import socket
import ssl
import threading
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import aiohttp.test_utils
import kmock
import yaml

from jitaccess.clock import ManualClock
from jitaccess.controller.config import OperatorConfig
from jitaccess.controller.operator import build, kubernetes_configuration, operate
from jitaccess.controller.reconciler import Reconciler
from jitaccess.controller.tls import ServingCertificate, make_serving_certificate
from jitaccess.policy.admission import IdentitySettings
from jitaccess_emulator.server import Emulator
from jitaccess_emulator.server import start as start_emulator
from jitaccess_sandbox.admission import MUTATING, VALIDATING, WebhookDispatcher
from jitaccess_sandbox.apiserver import SandboxApi
from jitaccess_sandbox.console_front import ConsoleFront
from jitaccess_sandbox.crds import crds_dir
from jitaccess_sandbox.kube_apiserver import KubeApiServer
from jitaccess_sandbox.rbac import CLUSTER_ROLE_BINDINGS, ROLE_BINDINGS, rbac_documents
from jitaccess_sandbox.rbac import GROUP as RBAC_GROUP

# The people of the sandbox, and the groups their (pretend) identity provider says they are in.
# The operator runs as its own service account, as in manifests/rbac.yaml (tests compare what it
# calls with what that ClusterRole allows).
OPERATOR_NAMESPACE = "jitaccess-system"
OPERATOR_USER = f"system:serviceaccount:{OPERATOR_NAMESPACE}:jitaccess"
# The web console's service account (manifests/console/), which the operator trusts to file for the
# person IAP verified (--console-submitter).
CONSOLE_SERVICE = f"{OPERATOR_NAMESPACE}/jitaccess-console"
CONSOLE_USER = f"system:serviceaccount:{OPERATOR_NAMESPACE}:jitaccess-console"
USERS: dict[str, list[str]] = {
    "admin": ["system:masters"],
    OPERATOR_USER: ["system:serviceaccounts", "system:serviceaccounts:jitaccess-system"],
    CONSOLE_USER: ["system:serviceaccounts", "system:serviceaccounts:jitaccess-system"],
    "alice@example.com": ["sre@example.com"],
    "bob@example.com": ["sre-leads@example.com"],
    "carol@example.com": ["developers@example.com"],
}
# Who may do what in the sandbox's namespaces, bound as README's installation says a cluster admin
# does: (RoleBinding name, ClusterRole from manifests/user-roles.yaml, users). admin is system:masters.
PEOPLE_BINDINGS = (
    ("jitaccess-requesters", "jitaccess-requester", ("alice@example.com", "carol@example.com")),
    ("jitaccess-approvers", "jitaccess-approver", ("bob@example.com",)),
)
# Grants are cluster-scoped: reading them needs a ClusterRoleBinding.
CLUSTER_PEOPLE_BINDINGS = (
    (
        "jitaccess-grant-readers",
        "jitaccess-grant-reader",
        ("alice@example.com", "bob@example.com", "carol@example.com"),
    ),
)
# The manifests whose RBAC objects the sandbox's API server holds from the start.
RBAC_MANIFESTS = ("user-roles.yaml", "rbac.yaml", "console/rbac.yaml")
RESOURCES = {
    "projects/my-sandbox",
    "projects/my-production",
    "folders/123456789012",
    "organizations/987654321098",
}

T = TypeVar("T")
_log = logging.getLogger(__name__)


def manifests_dir() -> Path | None:
    """manifests/ of this checkout (or JITACCESS_MANIFESTS_DIR, or beside the CRDs' folder)."""
    configured = os.environ.get("JITACCESS_MANIFESTS_DIR")
    candidates = [Path(configured)] if configured else []
    candidates += [Path(__file__).resolve().parents[2] / "manifests", crds_dir().parent / "manifests"]
    return next((path for path in candidates if (path / RBAC_MANIFESTS[0]).is_file()), None)


def rbac_objects(namespaces: tuple[str, ...]) -> list[tuple[str, dict[str, Any]]]:
    """(resource key, body) of the RBAC objects in manifests/, then the people's RoleBindings."""
    found: list[tuple[str, dict[str, Any]]] = []
    directory = manifests_dir()
    if directory is None:
        _log.warning("no manifests/ found (set JITACCESS_MANIFESTS_DIR): the sandbox has no jitaccess RBAC")
    else:
        for name in RBAC_MANIFESTS:
            path = directory / name
            if path.is_file():
                found += rbac_documents(yaml.safe_load_all(path.read_text()), OPERATOR_NAMESPACE)
    for namespace in namespaces:
        for binding, role, users in PEOPLE_BINDINGS:
            body = {
                "apiVersion": f"{RBAC_GROUP}/v1",
                "kind": "RoleBinding",
                "metadata": {"name": binding, "namespace": namespace},
                "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": role},
                "subjects": [{"apiGroup": RBAC_GROUP, "kind": "User", "name": user} for user in users],
            }
            found.append((ROLE_BINDINGS, body))
    for binding, role, users in CLUSTER_PEOPLE_BINDINGS:
        body = {
            "apiVersion": f"{RBAC_GROUP}/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": binding},
            "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": role},
            "subjects": [{"apiGroup": RBAC_GROUP, "kind": "User", "name": user} for user in users],
        }
        found.append((CLUSTER_ROLE_BINDINGS, body))
    return found


def webhook_configurations(port: int, ca_file: Path) -> list[tuple[str, dict[str, Any]]]:
    """(resource key, body) of the webhook configurations of manifests/webhooks.yaml, the one
    source, for an operator serving its webhooks on 127.0.0.1:`port`: each `clientConfig.service`
    becomes a URL with the same path, and `caBundle` is the CA that signed the operator's
    certificate (in a cluster, cert-manager's injector fills it)."""
    directory = manifests_dir()
    if directory is None or not (directory / "webhooks.yaml").is_file():
        raise FileNotFoundError(
            "manifests/webhooks.yaml not found: set JITACCESS_MANIFESTS_DIR to the manifests folder"
        )
    ca = base64.b64encode(ca_file.read_bytes()).decode()
    kinds = {"MutatingWebhookConfiguration": MUTATING, "ValidatingWebhookConfiguration": VALIDATING}
    found = []
    for document in yaml.safe_load_all((directory / "webhooks.yaml").read_text()):
        if not document or document.get("kind") not in kinds:
            continue
        body = copy.deepcopy(document)
        body["metadata"] = {"name": document["metadata"]["name"]}  # no cert-manager annotations here
        for webhook in body["webhooks"]:
            path = webhook["clientConfig"]["service"].get("path", "/")
            webhook["clientConfig"] = {"url": f"https://127.0.0.1:{port}{path}", "caBundle": ca}
        found.append((kinds[document["kind"]], body))
    return found


@dataclass
class Sandbox:
    state_dir: Path
    port_k8s: int = 0
    port_iam: int = 0
    port_webhook: int = 0  # where the operator will serve its webhooks (0: any free port)
    # A folder with kube-apiserver and etcd (KUBEBUILDER_ASSETS): run those instead of the sandbox API.
    kube_apiserver_assets: Path | None = None
    run_operator: bool = True
    clock: ManualClock = field(default_factory=ManualClock)
    tick_s: float = 0.2
    namespaces: tuple[str, ...] = ("default", "team-sre")
    # The sandbox API calls the operator's admission webhooks, as a real cluster does. Tests turn
    # this off only to prove that what bypasses admission never gets access.
    admission: bool = True
    trusted_submitters: frozenset[str] = frozenset()
    # More people than the sandbox's own (user -> groups), given tokens like them (the bench's load).
    extra_users: dict[str, list[str]] = field(default_factory=dict)
    # The web console behind an IAP stand-in (console_front): `console_url` once it serves.
    console: bool = False
    port_console: int = 0
    front: ConsoleFront | None = field(init=False, default=None)
    api: SandboxApi = field(init=False)  # the sandbox API (absent when a real kube-apiserver runs)
    emulator: Emulator = field(init=False)
    k8s_url: str = field(init=False, default="")
    iam_url: str = field(init=False, default="")
    reconciler: Reconciler | None = field(init=False, default=None)
    _stack: contextlib.AsyncExitStack = field(init=False, default_factory=contextlib.AsyncExitStack)
    _operator: threading.Thread | None = field(init=False, default=None)
    _loop: asyncio.AbstractEventLoop | None = field(init=False, default=None)  # the operator's
    _stop: threading.Event = field(init=False, default_factory=threading.Event)
    _key: bytes = field(init=False, default_factory=lambda: secrets.token_bytes(32))
    _api_tls: ServingCertificate = field(init=False)
    # Where the operator serves its admission webhooks, fixed before the API serves (as a cluster's
    # webhook Service is), so the webhook configurations are in place from the first request.
    webhook_port: int = field(init=False, default=0)
    # Each user's bearer token, as a static token file gives them to kube-apiserver.
    tokens: dict[str, str] = field(init=False, default_factory=dict)
    kube_apiserver: KubeApiServer | None = field(init=False, default=None)  # when one runs

    @property
    def people(self) -> dict[str, list[str]]:
        """Everyone the API authenticates: user -> groups."""
        return {**USERS, **self.extra_users}

    @property
    def kubeconfig(self) -> Path:
        """Every user's context. Written last: once it exists, an admitted request succeeds."""
        return self.state_dir / "kubeconfig"

    @property
    def operator_kubeconfig(self) -> Path:
        """The operator's service account alone, written as the API starts serving."""
        return self.state_dir / "operator.kubeconfig"

    @property
    def webhook_cert_dir(self) -> Path:
        return self.state_dir / "webhook"

    @property
    def audit_log(self) -> Path:
        """The operator's audit log (JSON lines); stdout is the demo's."""
        return self.state_dir / "audit.log"

    def api_ssl_context(self) -> ssl.SSLContext:
        """A client context that trusts the sandbox API's certificate (for plain HTTPS clients)."""
        return ssl.create_default_context(cadata=self._api_tls.ca_pem.decode())

    async def __aenter__(self) -> Sandbox:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.tokens = {user: secrets.token_urlsafe(24) for user in self.people}
        # HTTPS like any real cluster (kubectl sends no credentials over plain http).
        self._api_tls = make_serving_certificate(self.state_dir / "api-tls", ["127.0.0.1", "localhost"])
        if self.admission:
            self.webhook_port = self.port_webhook or _free_port()
            make_serving_certificate(self.webhook_cert_dir, ["127.0.0.1", "localhost"])
        if self.kube_apiserver_assets is None:
            await self._serve_sandbox_api()
        else:
            await self._start_kube_apiserver(self.kube_apiserver_assets)
        self.emulator = Emulator(resources=set(RESOURCES))
        runner, self.iam_url = await start_emulator(self.emulator, port=self.port_iam)
        self._stack.push_async_callback(runner.cleanup)
        (self.state_dir / "iam-endpoint").write_text(self.iam_url + "\n")
        self.write_kubeconfig(self.operator_kubeconfig, [OPERATOR_USER])
        if self.run_operator:
            await self.start_operator()
        if self.console:
            self.front = ConsoleFront(self, CONSOLE_USER, CONSOLE_SERVICE, port=self.port_console)
            self._stack.push_async_callback(self.front.stop)
            await self.front.start()
        self.write_kubeconfig(self.kubeconfig, list(USERS))
        return self

    @property
    def console_url(self) -> str:
        return self.front.url if self.front is not None else ""

    async def _serve_sandbox_api(self) -> None:
        """The Python API server, holding what a cluster admin installs before it serves."""
        self.api = SandboxApi(clock=self.clock.now)
        self.api.users = self.people
        self.api.tokens = {token: user for user, token in self.tokens.items()}
        for namespace in (OPERATOR_NAMESPACE, *self.namespaces):  # the operator's: its Lease
            self.api.add_namespace(namespace)
        for key, body in rbac_objects(self.namespaces):
            self.api.seed(key, body)
        if self.admission:  # writes fail closed until the operator is up, as in a cluster
            self.api.admission = WebhookDispatcher(self.api.stored)
            for key, body in webhook_configurations(self.webhook_port, self.webhook_cert_dir / "ca.crt"):
                self.api.seed(key, body)
        await self._stack.enter_async_context(self.api)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self._api_tls.certfile, self._api_tls.keyfile)
        server = await self._stack.enter_async_context(
            kmock.Server(self.api, port=self.port_k8s or None, server_cls=_tls_server(context))
        )
        self.k8s_url = f"https://127.0.0.1:{server.port}"
        if self.api.admission is not None:
            self._stack.push_async_callback(self.api.admission.close)

    async def _start_kube_apiserver(self, assets: Path) -> None:
        """A real kube-apiserver instead, given the same CRDs, namespaces, RBAC and webhooks."""
        server = KubeApiServer(
            assets, self.state_dir / "kube-apiserver", self._api_tls, self.people, self.tokens
        )
        self.kube_apiserver = server
        self._stack.push_async_callback(server.stop)
        await server.start()
        self.k8s_url = server.url
        documents: list[tuple[str, dict[str, Any]]] = [
            ("v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
            for name in (OPERATOR_NAMESPACE, *self.namespaces)
            if name != "default"
        ]
        documents += [(CRDS, crd) for crd in crd_documents()]
        documents += rbac_objects(self.namespaces)
        if self.admission:
            documents += webhook_configurations(self.webhook_port, self.webhook_cert_dir / "ca.crt")
        async with self._admin_session() as session:
            for key, body in documents:
                await install(session, self.k8s_url, key, body)
            for crd in crd_documents():
                await until_established(session, self.k8s_url, crd["metadata"]["name"])

    def _admin_session(self) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(
            headers={"Authorization": f"Bearer {self.tokens['admin']}"},
            connector=aiohttp.TCPConnector(ssl=self.api_ssl_context()),
        )

    async def __aexit__(self, *exc: object) -> None:
        await self.stop_operator()
        await self._stack.aclose()

    async def start_operator(self, **overrides: Any) -> Reconciler:
        """Run the operator in a thread of its own, with its own event loop.

        Like kopf.testing.KopfRunner, and for the same reason: when kopf stops it cancels every
        task its loop gained while it ran, which would include this API server's connections.
        """
        webhook: dict[str, Any] = {}
        if self.admission:
            webhook = {
                "webhook_port": self.webhook_port,
                "webhook_cert_dir": self.webhook_cert_dir,
                "attestation_key": self._key,
                "identity": IdentitySettings(
                    self.trusted_submitters, console_submitters=frozenset({CONSOLE_USER})
                ),
            }
        settings = OperatorConfig(
            iam_endpoint=self.iam_url,
            clock=self.clock,
            tick_s=self.tick_s,
            audit_log=str(self.audit_log),
            # As deployed (manifests/): the production path, with one replica holding the Lease.
            leader_election=True,
            leader_election_namespace=OPERATOR_NAMESPACE,
            leader_election_identity="jitaccess-sandbox",
            **{**webhook, **overrides},
        )
        configuration = kubernetes_configuration(self.operator_kubeconfig, context=OPERATOR_USER)
        self._stop = threading.Event()
        ready = threading.Event()
        reconciler, registry = build(settings, configuration)

        async def serve() -> None:
            self._loop = asyncio.get_running_loop()
            await operate(settings, registry, stop_flag=self._stop, ready_flag=ready)

        def run() -> None:
            try:
                asyncio.run(serve())
            finally:
                ready.set()

        # kopf says it ignores OS signals off the main thread; here that is the point.
        logging.getLogger("kopf._core.reactor.running").setLevel(logging.ERROR)
        self._operator = threading.Thread(target=run, name="jitaccess-operator", daemon=True)
        self._operator.start()
        if not await asyncio.to_thread(ready.wait, 30):
            raise TimeoutError("the operator did not start within 30s")
        if not self.operator_alive:
            raise RuntimeError("the operator stopped as it started; its log says why")
        self.reconciler = reconciler
        if settings.webhook_port is not None:
            if settings.webhook_port != self.webhook_port:
                await self.register_webhooks(
                    settings.webhook_port, (settings.webhook_cert_dir or Path()) / "ca.crt"
                )
            await self.wait_for_admission()
        return self.reconciler

    async def wait_for_admission(self, timeout_s: float = 30) -> None:
        """Until every admission webhook answers (kopf starts its webhook server just after it
        says it is ready): a server-side dry run of a request, judged but not stored."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        probe = {
            "apiVersion": "jitaccess.dev/v1alpha1",
            "kind": "ActivationRequest",
            "metadata": {"name": "sandbox-readiness-probe", "namespace": OPERATOR_NAMESPACE},
            "spec": {"grant": "sandbox-readiness-probe", "justification": "is admission up?"},
        }
        url = f"{self.k8s_url}/apis/jitaccess.dev/v1alpha1/namespaces/{OPERATOR_NAMESPACE}/activationrequests"
        headers = {"Authorization": f"Bearer {self.tokens['admin']}"}
        async with aiohttp.ClientSession() as session:
            while True:
                async with session.post(
                    url, params={"dryRun": "All"}, json=probe, headers=headers, ssl=self.api_ssl_context()
                ) as answer:
                    status = await answer.json()
                if answer.status != 500:  # admitted or refused: either way the webhooks answered
                    return
                if asyncio.get_running_loop().time() > deadline:
                    raise TimeoutError(f"admission did not come up: {status.get('message')}")
                await asyncio.sleep(0.05)

    async def in_operator(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run `coroutine` on the operator's event loop (its locks and tasks live there)."""
        assert self._loop is not None and self.operator_alive, "the operator is not running"
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coroutine, self._loop))

    async def register_webhooks(self, port: int, ca_file: Path) -> None:
        """Point the webhook configurations at an operator on `port` (as a Service would route)."""
        async with self._admin_session() as session:
            for key, body in webhook_configurations(port, ca_file):
                await install(session, self.k8s_url, key, body)

    async def stop_operator(self) -> None:
        if self._operator is None:
            return
        self._stop.set()
        await asyncio.to_thread(self._operator.join, 30)
        self._operator = None

    @property
    def operator_alive(self) -> bool:
        return self._operator is not None and self._operator.is_alive()

    def write_kubeconfig(self, path: Path, people: list[str]) -> None:
        """One context per user, each with the user's token; written whole or not at all."""
        users = [{"name": user, "user": {"token": self.tokens[user]}} for user in people]
        contexts = [
            {"name": user, "context": {"cluster": "jitaccess-sandbox", "user": user, "namespace": "team-sre"}}
            for user in people
        ]
        document = {
            "apiVersion": "v1",
            "kind": "Config",
            "current-context": people[0] if "admin" not in people else "admin",
            "clusters": [
                {
                    "name": "jitaccess-sandbox",
                    "cluster": {
                        "server": self.k8s_url,
                        "certificate-authority-data": base64.b64encode(self._api_tls.ca_pem).decode(),
                    },
                }
            ],
            "users": users,
            "contexts": contexts,
            "preferences": {},
        }
        partial = path.with_name(path.name + ".partial")
        partial.write_text(yaml.safe_dump(document, sort_keys=False))
        partial.chmod(0o600)
        partial.replace(path)


async def _wait_for_port(port: int, timeout_s: float = 15) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"the webhook server did not listen on {port}") from None
            await asyncio.sleep(0.05)
        else:
            writer.close()
            return


def _tls_server(context: ssl.SSLContext) -> type[aiohttp.test_utils.RawTestServer]:
    """kmock's test server class, serving TLS with `context`."""

    class TlsServer(aiohttp.test_utils.RawTestServer):
        def __init__(self, handler: Any, **kwargs: Any) -> None:
            super().__init__(handler, scheme="https", **kwargs)

        async def start_server(self, loop: asyncio.AbstractEventLoop | None = None, **kwargs: Any) -> None:
            await super().start_server(loop=loop, ssl=context, **kwargs)

    return TlsServer


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def serve_forever(sandbox: Sandbox) -> None:
    """Block until interrupted (or until the operator dies)."""
    while sandbox.operator_alive or not sandbox.run_operator:
        await asyncio.sleep(0.5)


CRDS = "apiextensions.k8s.io/v1/customresourcedefinitions"


def crd_documents() -> list[dict[str, Any]]:
    return [
        document
        for path in sorted(crds_dir().glob("*.yaml"))
        for document in yaml.safe_load_all(path.read_text())
        if document and document.get("kind") == "CustomResourceDefinition"
    ]


def resource_path(key: str, body: dict[str, Any]) -> str:
    """The collection URL of a resource key such as rbac.authorization.k8s.io/v1/roles."""
    *group_version, plural = key.split("/")
    prefix = "/api/" if len(group_version) == 1 else "/apis/"
    namespace = (body.get("metadata") or {}).get("namespace")
    scope = f"/namespaces/{namespace}" if namespace else ""
    return f"{prefix}{'/'.join(group_version)}{scope}/{plural}"


async def install(session: aiohttp.ClientSession, base: str, key: str, body: dict[str, Any]) -> None:
    """Create an object through the API, or replace the one of that name, as `kubectl apply` would."""
    url = base + resource_path(key, body)
    async with session.post(url, json=body) as answer:
        if answer.status < 300:
            return
        if answer.status != 409:
            raise RuntimeError(f"installing {key} {body['metadata']['name']}: {await answer.text()}")
    named = f"{url}/{body['metadata']['name']}"
    async with session.get(named) as answer:
        current = await answer.json()
    replacement = {
        **body,
        "metadata": {**body["metadata"], "resourceVersion": current["metadata"]["resourceVersion"]},
    }
    async with session.put(named, json=replacement) as answer:
        if answer.status >= 300:
            raise RuntimeError(f"replacing {key} {body['metadata']['name']}: {await answer.text()}")


async def until_established(
    session: aiohttp.ClientSession, base: str, name: str, timeout_s: float = 30
) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        async with session.get(
            f"{base}/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}"
        ) as answer:
            conditions = ((await answer.json()).get("status") or {}).get("conditions") or []
        if any(c.get("type") == "Established" and c.get("status") == "True" for c in conditions):
            return
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"the CRD {name} was not established within {timeout_s:.0f}s")
        await asyncio.sleep(0.1)
