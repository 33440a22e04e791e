"""The emulator's HTTP server: the Cloud Resource Manager v3 IAM surface plus control endpoints.

Real API: POST /v3/{projects|folders|organizations}/{id}:{getIamPolicy|setIamPolicy}
(the query string the Python client appends is ignored, as Google's front end does).
Control API, under /_emulator/ (a path Google never serves): declare resources, seed and read
policies, read the call log, inject faults (latency, error rates, fail-next, etag races).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
from collections import Counter, deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from jitaccess_emulator.compute import BackendServices
from jitaccess_emulator.compute import add_routes as add_compute_routes
from jitaccess_emulator.rules import IamError, Limits, StoredPolicy, apply_set, render

KINDS = ("projects", "folders", "organizations")
EMULATOR_KEY: web.AppKey[Emulator] = web.AppKey("emulator")
METHODS = ("getIamPolicy", "setIamPolicy")
FOREIGN_ROLE = "roles/browser"  # the foreign writer's own binding
ERROR_STATUS = {
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    400: "INVALID_ARGUMENT",
}


@dataclass
class Faults:
    """What the emulator does wrong on purpose. Probabilities are drawn from a seeded RNG."""

    latency_ms: float = 0.0
    error_rates: dict[str, dict[int, float]] = field(default_factory=dict)  # method -> {status: p}
    fail_next: list[dict[str, Any]] = field(default_factory=list)  # [{method, status, count, resource?}]
    etag_races: int = 0  # the next N setIamPolicy calls find the policy changed under them
    # Each call is slowed by `latency_spike_ms` more with this probability (Google's bad minutes).
    latency_spike_probability: float = 0.0
    latency_spike_ms: float = 0.0
    seed: int = 0


@dataclass(frozen=True)
class PolicyChange:
    """What one successful write did to a policy, member by member: (role, member, condition)."""

    resource: str
    by: str  # "setIamPolicy" (the API), "seed" (control endpoint), "foreign" (the foreign writer)
    added: frozenset[tuple[str, str, str]]
    removed: frozenset[tuple[str, str, str]]


@dataclass
class Quota:
    """Resource Manager's per-consumer quota (GCP-IAM.md §2): reads and writes, per second and minute.

    getIamPolicy counts as a read and setIamPolicy as a write, whatever the resource.
    """

    reads_per_s: int = 10
    writes_per_s: int = 10
    reads_per_min: int = 600
    writes_per_min: int = 600


@dataclass
class Call:
    method: str
    resource: str
    status: int
    at: float
    body: dict[str, Any]


class Emulator:
    """State and behaviour, independent of the HTTP plumbing so that tests can inspect it."""

    def __init__(
        self,
        *,
        resources: set[str] | None = None,
        any_resource: bool = False,
        state_file: Path | None = None,
        limits: Limits | None = None,
        keep_calls: int = 100_000,
    ) -> None:
        self.resources: set[str] = set(resources or ())
        self.any_resource = any_resource
        self.policies: dict[str, StoredPolicy] = {}
        self.limits = limits or Limits()
        self.unknown_roles: frozenset[str] = frozenset()
        self.faults = Faults()
        self.calls: list[Call] = []
        self.keep_calls = keep_calls
        self.state_file = state_file
        self.writes = 0
        self._rng = random.Random(0)
        self._locks: dict[str, asyncio.Lock] = {}
        self.quota: Quota | None = None  # off unless asked for: tests of other things stay simple
        self._served: dict[str, deque[float]] = {"getIamPolicy": deque(), "setIamPolicy": deque()}
        self._stalled: dict[str, asyncio.Event] = {}
        self._held: Counter[str] = Counter()
        self.changes: list[PolicyChange] = []
        self.foreign_writes = 0
        self.foreign_refusals: list[str] = []
        self._foreign_writer: asyncio.Task[None] | None = None
        self.compute = BackendServices()  # Compute Engine's backend services, for the console's IAP audience
        if state_file is not None and state_file.exists():
            self._load(state_file)

    # -- the real API -------------------------------------------------------------------------

    async def handle(self, resource: str, method: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        delay_ms = self.faults.latency_ms
        if (
            self.faults.latency_spike_probability
            and self._rng.random() < self.faults.latency_spike_probability
        ):
            delay_ms += self.faults.latency_spike_ms
        if delay_ms:
            await asyncio.sleep(delay_ms / 1000)
        if resource in self._stalled:
            self._held[resource] += 1
            try:
                await self._stalled[resource].wait()
            finally:
                self._held[resource] -= 1
        try:
            status, answer = 200, await self._serve(resource, method, body)
        except IamError as error:
            status, answer = error.code, error.body()
        self.calls.append(Call(method, resource, status, time.time(), body))
        if len(self.calls) > self.keep_calls:
            del self.calls[: len(self.calls) - self.keep_calls]
        return status, answer

    async def _serve(self, resource: str, method: str, body: dict[str, Any]) -> dict[str, Any]:
        self._inject(resource, method)
        self._charge_quota(method)
        if not (self.any_resource or resource in self.resources):
            raise IamError(
                403,
                "PERMISSION_DENIED",
                f"The caller does not have permission (or {resource} may not exist).",
            )
        lock = self._locks.setdefault(resource, asyncio.Lock())
        async with lock:
            policy = self.policies.get(resource) or StoredPolicy()
            if method == "getIamPolicy":
                options = body.get("options") or {}
                return render(policy, int(options.get("requestedPolicyVersion") or 0))
            if self.faults.etag_races > 0:
                self.faults.etag_races -= 1
                self._bump(resource, policy)
                policy = self.policies[resource]
            self.writes += 1
            updated = apply_set(
                policy,
                body,
                resource=resource,
                limits=self.limits,
                unknown_roles=self.unknown_roles,
                counter=self.writes,
            )
            self._store(resource, updated, "setIamPolicy")
            self._save()
            return render(updated, 3)

    def _inject(self, resource: str, method: str) -> None:
        for rule in self.faults.fail_next:
            if (
                rule.get("count", 0) > 0
                and rule.get("method", method) == method
                and rule.get("resource", resource) == resource
            ):
                rule["count"] -= 1
                raise self._fault(int(rule["status"]))
        for status, probability in (self.faults.error_rates.get(method) or {}).items():
            if self._rng.random() < probability:
                raise self._fault(int(status))

    def _charge_quota(self, method: str) -> None:
        if self.quota is None:
            return
        now = time.monotonic()
        served = self._served[method]
        while served and served[0] <= now - 60:
            served.popleft()
        reads = method == "getIamPolicy"
        per_s = self.quota.reads_per_s if reads else self.quota.writes_per_s
        per_min = self.quota.reads_per_min if reads else self.quota.writes_per_min
        last_second = sum(1 for at in reversed(served) if at > now - 1)
        if last_second >= per_s or len(served) >= per_min:
            raise self._quota_exceeded("Read requests" if reads else "Write requests")
        served.append(now)

    def stall(self, resource: str) -> None:
        """Hold every call on `resource` until `release` (a project whose API is very slow)."""
        self._stalled.setdefault(resource, asyncio.Event())

    def held(self, resource: str) -> int:
        """Calls on `resource` waiting for `release`."""
        return self._held[resource]

    def release(self, resource: str) -> None:
        event = self._stalled.pop(resource, None)
        if event is not None:
            event.set()

    @staticmethod
    def _quota_exceeded(metric: str) -> IamError:
        return IamError(
            429,
            "RESOURCE_EXHAUSTED",
            f"Quota exceeded for quota metric '{metric}' and limit '{metric} per minute' "
            "of service 'cloudresourcemanager.googleapis.com'.",
            [
                {
                    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                    "reason": "RATE_LIMIT_EXCEEDED",
                    "domain": "googleapis.com",
                }
            ],
        )

    @staticmethod
    def _fault(status: int) -> IamError:
        if status == 429:
            return Emulator._quota_exceeded("Write requests")
        messages = {
            403: "The caller does not have permission",
            503: "The service is currently unavailable.",
            500: "Internal error encountered.",
            409: "There were concurrent policy changes.",
        }
        return IamError(status, ERROR_STATUS.get(status, "UNKNOWN"), messages.get(status, "Injected fault."))

    def _bump(self, resource: str, policy: StoredPolicy) -> None:
        """A foreign writer that changed nothing visible but the etag (as a no-op write does)."""
        self.writes += 1
        self.policies[resource] = StoredPolicy(
            policy.bindings, policy.audit_configs, (self.writes).to_bytes(8, "big")
        )

    # -- control ------------------------------------------------------------------------------

    def seed(self, resource: str, bindings: list[dict[str, Any]]) -> StoredPolicy:
        """Replace a policy wholesale, as another tool would (checked by the same rules)."""
        self.resources.add(resource)
        updated = self._write_directly(resource, {"version": 3, "bindings": bindings}, "seed")
        self._save()
        return updated

    def _write_directly(self, resource: str, policy: dict[str, Any], by: str) -> StoredPolicy:
        """A write that is not an API call (same rules, any role): seeding, the foreign writer."""
        self.writes += 1
        updated = apply_set(
            self.policies.get(resource) or StoredPolicy(),
            {"policy": policy},
            resource=resource,
            limits=self.limits,
            unknown_roles=frozenset(),
            counter=self.writes,
        )
        self._store(resource, updated, by)
        return updated

    def _store(self, resource: str, updated: StoredPolicy, by: str) -> None:
        before = _members(self.policies.get(resource))
        after = _members(updated)
        self.policies[resource] = updated
        self.changes.append(PolicyChange(resource, by, frozenset(after - before), frozenset(before - after)))
        if len(self.changes) > self.keep_calls:
            del self.changes[: len(self.changes) - self.keep_calls]

    def start_foreign_writer(self, resources: list[str], interval_ms: float, max_members: int = 500) -> None:
        """Another tool that edits `resources` every `interval_ms`, as Terraform or a person would.

        Each write adds a member to the tool's own binding (`roles/browser`) until it holds
        `max_members`, then rewrites the policy unchanged (a new etag all the same), so every
        read-modify-write of ours in between meets a stale etag. Runs until stopped.
        """
        self.stop_foreign_writer()
        self._foreign_writer = asyncio.get_running_loop().create_task(
            self._foreign_writes(list(resources), interval_ms / 1000, max_members), name="foreign-writer"
        )

    def stop_foreign_writer(self) -> None:
        if self._foreign_writer is not None:
            self._foreign_writer.cancel()
            self._foreign_writer = None

    async def _foreign_writes(self, resources: list[str], interval_s: float, max_members: int) -> None:
        while True:
            await asyncio.sleep(interval_s)
            for resource in resources:
                async with self._locks.setdefault(resource, asyncio.Lock()):
                    current = self.policies.get(resource) or StoredPolicy()
                    bindings = [dict(b, members=list(b["members"])) for b in current.bindings]
                    mine = next(
                        (b for b in bindings if b["role"] == FOREIGN_ROLE and not b.get("condition")), None
                    )
                    if mine is None:
                        mine = {"role": FOREIGN_ROLE, "members": []}
                        bindings.append(mine)
                    if len(mine["members"]) < max_members:
                        mine["members"].append(f"user:foreign-{len(mine['members'])}@example.com")
                    policy = {"version": 3, "bindings": bindings, "etag": current.etag_text()}
                    try:
                        self._write_directly(resource, policy, "foreign")
                    except IamError as error:  # refused (a full policy): the tool tries again later
                        self.foreign_refusals.append(f"{resource}: {error}")
                        continue
                    self.foreign_writes += 1

    def configure(self, settings: dict[str, Any]) -> None:
        faults = self.faults
        if "latency_ms" in settings:
            faults.latency_ms = float(settings["latency_ms"])
        if "error_rates" in settings:
            faults.error_rates = {
                m: {int(s): float(p) for s, p in rates.items()}
                for m, rates in settings["error_rates"].items()
            }
        if "fail_next" in settings:
            faults.fail_next = [dict(rule) for rule in settings["fail_next"]]
        if "etag_races" in settings:
            faults.etag_races = int(settings["etag_races"])
        if "latency_spike" in settings:
            spike = settings["latency_spike"] or {}
            faults.latency_spike_probability = float(spike.get("probability", 0.0))
            faults.latency_spike_ms = float(spike.get("ms", 0.0))
        if "foreign_writer" in settings:
            writer = settings["foreign_writer"]
            if writer:
                self.start_foreign_writer(
                    writer["resources"],
                    float(writer.get("interval_ms", 20)),
                    int(writer.get("max_members", 500)),
                )
            else:
                self.stop_foreign_writer()
        if "seed" in settings:
            faults.seed = int(settings["seed"])
            self._rng = random.Random(faults.seed)
        if "unknown_roles" in settings:
            self.unknown_roles = frozenset(settings["unknown_roles"])
        if "quota" in settings:
            quota = settings["quota"]
            self.quota = None if quota is None else Quota(**{**asdict(Quota()), **quota})
        if "limits" in settings:
            self.limits = Limits(**{**asdict(self.limits), **settings["limits"]})

    def snapshot(self, resource: str) -> dict[str, Any]:
        policy = self.policies.get(resource) or StoredPolicy()
        return {"etag": policy.etag_text(), "bindings": policy.bindings, "auditConfigs": policy.audit_configs}

    def _save(self) -> None:
        if self.state_file is None:
            return
        state = {
            "resources": sorted(self.resources),
            "policies": {name: {**self.snapshot(name)} for name in self.policies},
        }
        temporary = self.state_file.with_suffix(".tmp")
        temporary.write_text(json.dumps(state, indent=1))
        os.replace(temporary, self.state_file)

    def _load(self, path: Path) -> None:
        import base64

        state = json.loads(path.read_text())
        self.resources.update(state.get("resources", []))
        for name, policy in state.get("policies", {}).items():
            self.policies[name] = StoredPolicy(
                policy["bindings"], policy.get("auditConfigs", []), base64.b64decode(policy["etag"])
            )


def _members(policy: StoredPolicy | None) -> set[tuple[str, str, str]]:
    if policy is None:
        return set()
    return {
        (binding["role"], member, json.dumps(binding.get("condition"), sort_keys=True))
        for binding in policy.bindings
        for member in binding["members"]
    }


def make_app(emulator: Emulator) -> web.Application:
    async def iam(request: web.Request) -> web.Response:
        kind, target = request.match_info["kind"], request.match_info["target"]
        identifier, _, method = target.rpartition(":")
        if kind not in KINDS or method not in METHODS or not identifier:
            return _json(404, IamError(404, "NOT_FOUND", f"Method not found: {request.path}").body())
        try:
            body = await request.json() if request.can_read_body else {}
        except json.JSONDecodeError:
            return _json(400, IamError(400, "INVALID_ARGUMENT", "Invalid JSON payload received.").body())
        status, answer = await emulator.handle(
            f"{kind}/{identifier}", method, body if isinstance(body, dict) else {}
        )
        return _json(status, answer)

    async def get_policy(request: web.Request) -> web.Response:
        return _json(200, emulator.snapshot(request.match_info["resource"]))

    async def put_policy(request: web.Request) -> web.Response:
        resource = request.match_info["resource"]
        try:
            policy = emulator.seed(resource, (await request.json()).get("bindings", []))
        except IamError as error:
            return _json(error.code, error.body())
        return _json(200, {"etag": policy.etag_text(), "bindings": policy.bindings})

    async def add_resources(request: web.Request) -> web.Response:
        emulator.resources.update((await request.json()).get("resources", []))
        return _json(200, {"resources": sorted(emulator.resources)})

    async def faults(request: web.Request) -> web.Response:
        emulator.configure(await request.json())
        return _json(
            200, {"faults": asdict(emulator.faults), "unknown_roles": sorted(emulator.unknown_roles)}
        )

    async def calls(request: web.Request) -> web.Response:
        if request.method == "DELETE":
            emulator.calls.clear()
        return _json(200, {"calls": [asdict(call) for call in emulator.calls]})

    app = web.Application(client_max_size=8 * 1024 * 1024)
    app.router.add_post("/v3/{kind}/{target}", iam)
    app.router.add_get("/_emulator/policies/{resource:.+}", get_policy)
    app.router.add_put("/_emulator/policies/{resource:.+}", put_policy)
    app.router.add_post("/_emulator/resources", add_resources)
    app.router.add_post("/_emulator/faults", faults)
    app.router.add_route("*", "/_emulator/calls", calls)
    add_compute_routes(app, emulator.compute)

    async def stop_foreign_writer(_: web.Application) -> None:
        emulator.stop_foreign_writer()

    app.on_cleanup.append(stop_foreign_writer)
    app[EMULATOR_KEY] = emulator
    return app


def _json(status: int, body: dict[str, Any]) -> web.Response:
    return web.Response(
        status=status, text=json.dumps(body), content_type="application/json", charset="utf-8"
    )


async def start(emulator: Emulator, host: str = "127.0.0.1", port: int = 0) -> tuple[web.AppRunner, str]:
    """Start serving; returns the runner (to clean up) and the base URL (http://127.0.0.1:PORT)."""
    runner = web.AppRunner(make_app(emulator), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    sockets = site._server.sockets if site._server else []  # aiohttp exposes no public accessor
    bound = sockets[0].getsockname()[1] if sockets else port
    return runner, f"http://{host}:{bound}"
