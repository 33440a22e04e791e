import base64

import pytest

from jitaccess_emulator.rules import IamError, Limits, StoredPolicy, apply_set, render

COND = {"title": "t", "expression": 'request.time < timestamp("2030-01-01T00:00:00Z")'}


def store(bindings, limits=None, unknown=frozenset(), stored=None, version=3, etag=True):
    stored = stored or StoredPolicy()
    policy = {"version": version, "bindings": bindings}
    if etag:
        policy["etag"] = stored.etag_text()
    return apply_set(
        stored,
        {"policy": policy},
        resource="projects/p",
        limits=limits or Limits(),
        unknown_roles=unknown,
        counter=1,
    )


def error_of(**kwargs):
    with pytest.raises(IamError) as caught:
        store(**kwargs)
    return caught.value


def test_versions_and_withcond_down_conversion():
    policy = store([{"role": "roles/compute.admin", "members": ["user:a@x.com"], "condition": COND}])
    assert render(policy, 3)["version"] == 3 and render(policy, 3)["bindings"][0]["condition"] == COND
    old = render(policy, 1)
    assert (
        old["version"] == 1
        and "_withcond_" in old["bindings"][0]["role"]
        and "condition" not in old["bindings"][0]
    )
    assert render(store([{"role": "roles/viewer", "members": ["user:a@x.com"]}]), 3)["version"] == 1
    with pytest.raises(IamError):
        render(policy, 2)


def test_etag_is_base64_changes_on_write_and_stale_is_409():
    first = store([{"role": "roles/viewer", "members": ["user:a@x.com"]}])
    assert len(base64.b64decode(first.etag_text())) == 8
    second = store([{"role": "roles/viewer", "members": ["user:b@x.com"]}], stored=first)
    assert second.etag != first.etag
    stale = {"policy": {"version": 3, "etag": first.etag_text(), "bindings": []}}
    with pytest.raises(IamError) as caught:
        apply_set(second, stale, resource="projects/p", limits=Limits(), unknown_roles=frozenset(), counter=3)
    assert caught.value.code == 409 and caught.value.status == "ABORTED"


def test_conditions_need_version_3():
    assert (
        error_of(
            bindings=[{"role": "roles/x.y", "members": ["user:a@x.com"], "condition": COND}], version=1
        ).code
        == 400
    )


def test_member_role_and_condition_validation():
    assert "type prefix" in error_of(bindings=[{"role": "roles/x.y", "members": ["a@x.com"]}]).message
    assert "no members" in error_of(bindings=[{"role": "roles/x.y", "members": []}]).message
    assert (
        "basic role"
        in error_of(
            bindings=[{"role": "roles/owner", "members": ["user:a@x.com"], "condition": COND}]
        ).message
    )
    assert (
        "not supported"
        in error_of(
            bindings=[{"role": "roles/x.y", "members": ["user:a@x.com"]}], unknown=frozenset({"roles/x.y"})
        ).message
    )
    many = " && ".join(['request.time < timestamp("2030-01-01T00:00:00Z")'] * 14)
    assert (
        "logical operators"
        in error_of(
            bindings=[
                {
                    "role": "roles/x.y",
                    "members": ["user:a@x.com"],
                    "condition": {"title": "t", "expression": many},
                }
            ]
        ).message
    )


def test_limits():
    same = [
        {
            "role": "roles/x.y",
            "members": ["user:a@x.com"],
            "condition": {"title": f"t{i}", "expression": COND["expression"]},
        }
        for i in range(21)
    ]
    assert "limit is 20" in error_of(bindings=same).message
    crowd = [{"role": "roles/x.y", "members": [f"user:u{i}@x.com" for i in range(11)]}]
    assert "maximum allowed size 10" in error_of(bindings=crowd, limits=Limits(principals=10)).message
    groups = [{"role": "roles/x.y", "members": [f"group:g{i}@x.com" for i in range(6)]}]
    assert "limit is 5" in error_of(bindings=groups, limits=Limits(groups_and_domains=5)).message
    assert "size limit" in error_of(bindings=crowd, limits=Limits(policy_bytes=100)).message


def test_normalises_duplicates():
    policy = store(
        [
            {"role": "roles/x.y", "members": ["user:a@x.com", "user:a@x.com"]},
            {"role": "roles/x.y", "members": ["user:b@x.com"]},
        ]
    )
    assert policy.bindings == [{"role": "roles/x.y", "members": ["user:a@x.com", "user:b@x.com"]}]
