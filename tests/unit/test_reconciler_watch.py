"""What a watch event makes the reconciler do: rework only when something it depends on changed."""

from __future__ import annotations

import copy
from typing import Any

from jitaccess.controller.config import OperatorConfig
from jitaccess.controller.reconciler import Reconciler
from tests.unit.factories import grant_body, request_body


def reconciler() -> Reconciler:
    # Watch events only touch the caches and the schedule: no API client or IAM writer is called.
    return Reconciler(OperatorConfig(), kube=None, writer=None)  # type: ignore[arg-type]


def version(body: dict[str, Any], resource_version: str, **changes: Any) -> dict[str, Any]:
    body = copy.deepcopy(body)
    body["metadata"]["resourceVersion"] = resource_version
    body.update(changes)
    return body


def test_the_echo_of_our_own_write_is_not_reconciled_again():
    subject = reconciler()
    key = ("request", ("team", "r"))
    first = version(request_body(), "5")
    subject.observe_request(first)
    assert subject.scheduler.due(key) is not None
    subject.scheduler.cancel(key)
    subject.observe_request(copy.deepcopy(first))  # the same version again: our write's echo
    assert subject.scheduler.due(key) is None
    subject.observe_request(version(first, "4"))  # older than what we know
    assert subject.scheduler.due(key) is None
    subject.observe_request(version(first, "6", status={"phase": "Active"}))  # news
    assert subject.scheduler.due(key) is not None


def test_a_grant_status_write_does_not_rework_its_requests_but_a_spec_change_does():
    subject = reconciler()
    request_key = ("request", ("team", "r"))
    subject.observe_request(version(request_body(), "1"))
    grant = version(grant_body("g"), "2")
    subject.observe_grant(grant)
    assert subject.scheduler.due(request_key) is not None  # a grant not known before
    subject.scheduler.cancel(request_key)
    subject.observe_grant(version(grant, "3", status={"activeRequests": 4}))
    assert subject.scheduler.due(request_key) is None
    assert subject.scheduler.due(("grant", "g")) is not None
    narrower = version(grant, "4")
    narrower["spec"]["roles"] = ["roles/compute.admin"]
    subject.observe_grant(narrower)
    assert subject.scheduler.due(request_key) is not None
