"""Which request fields a webhook's matchCondition reads: the sandbox API evaluates a condition
once per distinct value of them, so a field it misses would let one caller's answer stand for
another's. Anything but plain `request.a.b` reads is never remembered."""

from __future__ import annotations

from jitaccess_sandbox.admission import _evaluate, _request_paths

REQUEST = {"operation": "UPDATE", "userInfo": {"username": "alice", "groups": ["a"]}, "name": "x"}


def test_only_plain_request_field_reads_are_remembered():
    assert _request_paths("request.operation == 'UPDATE' && request.userInfo.username == 'op'") == (
        ("operation",),
        ("userInfo", "username"),
    )
    assert _request_paths("request . userInfo . groups.exists(g, g == 'x')") == (("userInfo", "groups"),)
    assert _request_paths("request.userInfo.extra.size() > 1") == (("userInfo", "extra"),)
    for whole in (
        "request == null",
        "request['operation'] == 'UPDATE'",
        "has(request)",
        "object.metadata.name == 'x'",
        "oldObject == null || request.operation == 'CREATE'",
        "authorizer.requestResource.check('get').allowed()",
    ):
        assert _request_paths(whole) is None, whole


def test_remembered_answers_follow_the_fields_read():
    people = "request.userInfo.username != 'admin'"
    assert _evaluate(people, REQUEST) is True
    assert _evaluate(people, {**REQUEST, "userInfo": {"username": "admin"}}) is False
    assert _evaluate(people, REQUEST) is True
    groups = "request.userInfo.groups.exists(g, g == 'b')"
    assert _evaluate(groups, REQUEST) is False
    assert _evaluate(groups, {**REQUEST, "userInfo": {"username": "alice", "groups": ["a", "b"]}}) is True
    missing = "request.userInfo.extra.size() > 0"
    assert isinstance(_evaluate(missing, REQUEST), str)  # no such key: an error, not a bool
    assert _evaluate(missing, {**REQUEST, "userInfo": {**REQUEST["userInfo"], "extra": {"k": ["v"]}}}) is True
    # A map with a key named like the method called on it: the whole map is what is read.
    many = "request.userInfo.extra.size() > 1"
    one = {**REQUEST, "userInfo": {**REQUEST["userInfo"], "extra": {"size": ["x"]}}}
    two = {**REQUEST, "userInfo": {**REQUEST["userInfo"], "extra": {"size": ["x"], "other": ["y"]}}}
    assert _evaluate(many, one) is False and _evaluate(many, two) is True
    # A missing key is not its parent: options.x absent, and options looking like options.x.
    nested = "has(request.options.x)"
    assert _evaluate(nested, {**REQUEST, "options": {"x": {"kind": "K"}}}) is True
    assert _evaluate(nested, {**REQUEST, "options": {"kind": "K"}}) is False
