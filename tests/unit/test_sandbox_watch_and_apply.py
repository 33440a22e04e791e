"""The sandbox API's watch log and server-side apply, without a server."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from jitaccess_sandbox import apply
from jitaccess_sandbox.watch import ChangeLog, TooOld


def obj(name: str, version: int, **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, "resourceVersion": str(version)}, "spec": spec}


async def take(changes: Any, count: int) -> list[tuple[str, str, int]]:
    taken = []
    async for change in changes:
        taken.append((change.type, change.object.get("metadata", {}).get("name", ""), change.version))
        if len(taken) == count:
            break
    return taken


async def test_a_watch_from_a_version_replays_what_came_after_it_then_follows() -> None:
    log = ChangeLog()
    log.publish("ar", "ADDED", obj("a", 1))
    log.publish("eg", "ADDED", obj("g", 2))  # another kind: not in this watch
    log.publish("ar", "MODIFIED", obj("a", 3))
    follow = log.follow("ar", 1, lambda: [])
    first = await take(follow, 1)
    log.publish("ar", "DELETED", obj("a", 4))
    assert first + await take(follow, 1) == [("MODIFIED", "a", 3), ("DELETED", "a", 4)]


async def test_a_watch_without_a_version_starts_with_what_exists_and_marks_the_end() -> None:
    log = ChangeLog()
    existing = [obj("b", 7), obj("a", 5)]
    follow = log.follow("ar", None, lambda: existing, mark_initial_end=True)
    assert await take(follow, 3) == [("ADDED", "a", 5), ("ADDED", "b", 7), ("BOOKMARK", "", 7)]


async def test_a_version_older_than_the_log_is_gone() -> None:
    log = ChangeLog(keep=2)
    for version in (1, 2, 3):
        log.publish("ar", "MODIFIED", obj("a", version))
    with pytest.raises(TooOld):
        await take(log.follow("ar", 0, lambda: []), 1)
    assert await asyncio.wait_for(take(log.follow("ar", 1, lambda: []), 2), 1) == [
        ("MODIFIED", "a", 2),
        ("MODIFIED", "a", 3),
    ]


def test_an_apply_removes_only_the_fields_its_manager_stopped_applying() -> None:
    created = apply.created(
        {"metadata": {"name": "x", "labels": {"team": "edge", "tier": "1"}}, "spec": {"a": 1, "b": 2}},
        "argocd",
        "jitaccess.dev/v1alpha1",
        "2026-12-02T00:00:00Z",
    )
    # someone else sets spec.c; argocd then stops applying spec.b and the label tier
    created["spec"]["c"] = 3
    applied = apply.apply(
        created,
        {"metadata": {"name": "x", "labels": {"team": "core"}}, "spec": {"a": 1}},
        "argocd",
        "jitaccess.dev/v1alpha1",
        "2026-12-02T00:01:00Z",
    )
    assert applied["spec"] == {"a": 1, "c": 3}
    assert applied["metadata"]["labels"] == {"team": "core"}
    (entry,) = applied["metadata"]["managedFields"]
    assert entry["manager"] == "argocd" and entry["operation"] == "Apply"
    assert entry["fieldsV1"] == {"f:metadata": {"f:labels": {"f:team": {}}}, "f:spec": {"f:a": {}}}


def test_a_field_another_manager_applied_too_stays() -> None:
    both = apply.created({"metadata": {"name": "x"}, "spec": {"a": 1}}, "flux", "v1", "t")
    both = apply.apply(both, {"metadata": {"name": "x"}, "spec": {"a": 1}}, "argocd", "v1", "t")
    left = apply.apply(both, {"metadata": {"name": "x"}, "spec": {}}, "argocd", "v1", "t")
    assert left["spec"] == {"a": 1}
    assert [e["manager"] for e in left["metadata"]["managedFields"]] == ["flux", "argocd"]
