"""The window is sealed before IAM hears of it: when the seal does not land, nothing is written."""

from __future__ import annotations

import asyncio
from typing import Any

from jitaccess.controller.config import OperatorConfig
from jitaccess.controller.reconciler import Reconciler
from jitaccess.iam.writer import Outcome
from jitaccess.policy.records import ACTIVATION
from tests.unit.factories import KEY, admitted, grant_body, request_body


class VanishingKube:
    """The request is deleted just before the operator's seal reaches the API server (404: None);
    or, with `vanish=False`, every write lands and is answered with the object as patched."""

    def __init__(self, request: dict[str, Any], vanish: bool) -> None:
        self.request, self.vanish = request, vanish
        self.writes: list[tuple[str, dict[str, Any]]] = []

    async def patch_request(self, namespace: str, name: str, patch: dict[str, Any]) -> dict[str, Any] | None:
        self.writes.append(("metadata", patch))
        if self.vanish:
            return None
        metadata = self.request["metadata"]
        annotations = {**metadata.get("annotations", {}), **patch["metadata"].get("annotations", {})}
        self.request = {**self.request, "metadata": {**metadata, "annotations": annotations}}
        return self.request

    async def patch_request_status(self, namespace: str, name: str, status: dict[str, Any]) -> dict[str, Any]:
        self.writes.append(("status", status))
        self.request = {**self.request, "status": {**self.request.get("status", {}), **status}}
        return self.request

    async def patch_grant_status(self, name: str, status: dict[str, Any]) -> None:
        return None

    async def post_event(self, body: dict[str, Any], event: Any) -> None:
        return None


class RecordingWriter:
    def __init__(self) -> None:
        self.applied: list[str] = []

    async def apply(self, resource: str, owners: Any = (), hold: Any = ()) -> Outcome:
        self.applied.append(resource)
        return Outcome(ok=True)


def reconcile(vanish: bool) -> tuple[VanishingKube, RecordingWriter]:
    request = admitted(request_body())
    kube, writer = VanishingKube(request, vanish), RecordingWriter()
    subject = Reconciler(OperatorConfig(attestation_key=KEY), kube, writer)  # type: ignore[arg-type]
    subject.observe_grant(grant_body("g"))
    subject.observe_request(request)

    async def run() -> None:
        await subject.reconcile_request(("team", "r"))
        await subject.recorder.flush()

    asyncio.run(run())
    return kube, writer


def test_a_request_gone_before_its_seal_landed_gets_nothing_written():
    kube, writer = reconcile(vanish=True)
    assert [kind for kind, _ in kube.writes] == ["metadata"]
    assert ACTIVATION in kube.writes[0][1]["metadata"]["annotations"]
    assert writer.applied == []


def test_a_sealed_request_is_written_then_shown_active_without_an_activating_write():
    kube, writer = reconcile(vanish=False)
    assert writer.applied == ["projects/my-sandbox"]
    assert [(kind, patch.get("phase")) for kind, patch in kube.writes] == [
        ("metadata", None),
        ("status", "Active"),
    ]
