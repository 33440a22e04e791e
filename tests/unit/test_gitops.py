"""GitOps: the Argo CD health checks in examples/gitops/ run in a real Lua against
statuses the operator's own code writes; grants carry what kstatus (Flux) reads."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from lupa import LuaRuntime

from jitaccess.policy.grants import grant_status
from tests.unit.factories import grant_body

ROOT = Path(__file__).resolve().parents[2]
CHECKS = yaml.safe_load((ROOT / "examples" / "gitops" / "argocd-cm.yaml").read_text())["data"]
NOW = datetime(2026, 11, 24, 9, tzinfo=UTC)


def health(kind: str, obj: dict[str, Any]) -> tuple[str, str]:
    lua = LuaRuntime(unpack_returned_tuples=True)
    lua.globals().obj = lua.table_from(obj, recursive=True)
    result = lua.execute(CHECKS[f"resource.customizations.health.jitaccess.dev_{kind}"])
    return result["status"], result["message"]


def test_a_valid_grant_is_healthy_and_an_invalid_one_degraded_with_the_operators_message():
    valid = grant_body(name="ok")
    valid["status"] = grant_status(valid, 0, NOW)
    assert health("EligibleGrant", valid)[0] == "Healthy"
    invalid = grant_body(name="bad", justification={"pattern": "(a)\\1"})
    invalid["status"] = grant_status(invalid, 0, NOW)
    status, message = health("EligibleGrant", invalid)
    assert status == "Degraded" and "spec.justification.pattern" in message


def test_a_grant_the_operator_has_not_seen_yet_is_progressing():
    fresh = grant_body(name="new")
    assert health("EligibleGrant", fresh)[0] == "Progressing"
    changed = grant_body(name="changed")
    changed["status"] = grant_status(changed, 0, NOW)
    changed["metadata"]["generation"] = 2  # edited in Git; the operator has not judged it yet
    assert health("EligibleGrant", changed)[0] == "Progressing"


def test_grant_status_carries_what_kstatus_reads():
    body = grant_body(name="k")
    body["metadata"]["generation"] = 3
    status = grant_status(body, 0, NOW)
    assert status is not None and status["observedGeneration"] == 3
    (ready,) = [c for c in status["conditions"] if c["type"] == "Ready"]
    assert ready["status"] == "True" and ready["observedGeneration"] == 3


@pytest.mark.parametrize(
    ("phase", "expected"),
    [
        (None, "Progressing"),
        ("AwaitingApproval", "Progressing"),
        ("Activating", "Progressing"),
        ("Active", "Healthy"),
        ("Expired", "Suspended"),
        ("Revoked", "Suspended"),
        ("Withdrawn", "Suspended"),
        ("Denied", "Degraded"),
        ("Rejected", "Degraded"),
        ("ActivationFailed", "Degraded"),
    ],
)
def test_request_health_follows_its_phase(phase, expected):
    request: dict[str, Any] = {"metadata": {"name": "r", "generation": 1}, "spec": {"grant": "g"}}
    if phase:
        request["status"] = {
            "phase": phase,
            "conditions": [
                {"type": "Ready", "status": "True" if phase == "Active" else "False", "message": "why"}
            ],
        }
    status, message = health("ActivationRequest", request)
    assert status == expected
    if phase:
        assert message == f"{phase}: why"
