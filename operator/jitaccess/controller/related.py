"""The requests one request's judgement depends on, found in the cache: what it extends (with
that request's approvals, and whether another extension already continues it) and an extension
that now holds its access. The rules that use them live in `policy.extensions`."""

from __future__ import annotations

from jitaccess.api.phases import Phase
from jitaccess.controller.cache import Cache, RequestKey
from jitaccess.policy.extensions import Related
from jitaccess.policy.steps import RequestState, read_state


def related_of(cache: Cache, key: RequestKey, state: RequestState, secret: bytes) -> Related:
    extends = state.spec.extends if state.spec is not None else None
    before = (key[0], extends) if extends else None
    body = cache.requests.get(before) if before else None
    predecessor = read_state(body, secret) if body is not None else None
    taken_by = None
    if before is not None and predecessor is not None:
        for other in cache.extensions_of(before):
            if other != key and _continues(cache, other, before[1], predecessor.uid, secret) is not None:
                taken_by = other[1]
    successor = None
    for other in cache.extensions_of(key):
        found = _continues(cache, other, key[1], state.uid, secret)
        # It continues this very object (its sealed record says so) and shows Active: its IAM
        # write, which replaced this one's bindings, is done. (Ending early is the safe error.)
        if found is not None and found.shown.phase is Phase.ACTIVE:
            successor = other[1]
    decisions = cache.decisions(before, secret) if before else ()
    return Related(predecessor, successor, decisions, taken_by)


def related_keys(cache: Cache, key: RequestKey, state: RequestState) -> list[RequestKey]:
    """What judges this request and what it judges: a change of one wakes the others."""
    found = [(key[0], state.spec.extends)] if state.spec is not None and state.spec.extends else []
    return found + cache.extensions_of(key)


def _continues(cache: Cache, other: RequestKey, name: str, uid: str, secret: bytes) -> RequestState | None:
    """`other` as read now, if its sealed activation continues request `name` (`uid`)."""
    found = read_state(cache.requests[other], secret)
    held = found.records.held
    return found if held is not None and held.continues == (name, uid) else None
