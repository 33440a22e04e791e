"""`jitaccess run`'s flag table: every flag reaches what it configures, can be set from its
environment variable, and is documented."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from jitaccess.cli import operator_config
from jitaccess.run_flags import RUN_FLAGS, add_flags, markdown_table

DOCS = Path(__file__).resolve().parents[2] / "docs" / "operations.md"
# A value other than the default for each flag that sets a field directly.
SAMPLES = {
    "--iam-endpoint": "http://127.0.0.1:1",
    "--metrics-port": "9999",
    "--metrics-host": "127.0.0.2",
    "--webhook-host": "127.0.0.3",
    "--webhook-cert-dir": "/tmp/certs",
    "--insecure-no-admission": None,
    "--iam-write-mode": "per-activation",
    "--iam-writes-per-second": "3",
    "--audit-log": "off",
    "--leader-elect": None,
    "--leader-election-namespace": "ops",
    "--leader-election-lease": "jit",
    "--leader-election-identity": "pod-1",
    "--tick": "0.1",
}


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_flags(parser, RUN_FLAGS)
    return parser.parse_args(argv)


@pytest.fixture
def key_file(tmp_path, monkeypatch):
    for flag in RUN_FLAGS:
        monkeypatch.delenv(flag.variable, raising=False)
    path = tmp_path / "key"
    path.write_text("k" * 64)
    return path


def test_every_flag_that_names_a_field_reaches_it(key_file):
    assert {flag.name for flag in RUN_FLAGS if flag.field} == set(SAMPLES)
    default = operator_config(parse(["--attestation-key-file", str(key_file)]))
    argv = ["--attestation-key-file", str(key_file)]
    for name, value in SAMPLES.items():
        argv += [name] if value is None else [name, value]
    configured = operator_config(parse(argv))
    unchanged = [
        f.name for f in RUN_FLAGS if f.field and getattr(configured, f.field) == getattr(default, f.field)
    ]
    assert not unchanged, unchanged


def test_the_rest_reach_their_settings_too(key_file):
    config = operator_config(
        parse(
            [
                "--attestation-key-file", str(key_file),
                "--namespace", "a", "--namespace", "b",
                "--trusted-submitter", "argo",
                "--history-retention", "2h",
                "--sweep-interval", "0",
                "--webhook-port", "8443",
                "--lease-duration", "30s", "--renew-deadline", "20s", "--retry-period", "5s",
                "--workload-identity-pool", "p.svc.id.goog", "--workload-identity-project-number", "42",
            ]
        )
    )  # fmt: skip
    assert config.namespaces == ("a", "b") and not config.all_namespaces
    assert config.identity.trusted_submitters == frozenset({"argo"})
    assert config.identity.workload_identity_pool == "p.svc.id.goog"
    assert config.history_retention.total_seconds() == 7200 and not config.sweep_interval
    assert config.webhook_port == 8443 and config.lease_timings.duration.total_seconds() == 30
    assert config.attestation_key == b"k" * 64


# Every notification flag, and a value other than its default (secrets only as file paths).
NOTIFY_SAMPLES = {
    "--notify-url": ("webhook_url", "http://127.0.0.1:2/hook"),
    "--notify-signing-secret-file": ("webhook_secret_file", "/s/hmac"),
    "--smtp-host": ("smtp_host", "smtp.example.com"),
    "--smtp-port": ("smtp_port", "465"),
    "--smtp-security": ("smtp_security", "tls"),
    "--smtp-from": ("smtp_from", "jit@example.com"),
    "--smtp-username": ("smtp_username", "jit"),
    "--smtp-password-file": ("smtp_password_file", "/s/smtp"),
    "--smtp-ca-file": ("smtp_ca_file", "/s/ca.crt"),
    "--notify-group-addresses-file": ("group_addresses_file", "/s/groups.yaml"),
    "--slack-token-file": ("slack_token_file", "/s/token"),
    "--slack-channel": ("slack_channel", "C0123456789"),
    "--slack-api-url": ("slack_api_url", "http://127.0.0.1:3/api/"),
    "--slack-signing-secret-file": ("slack_signing_secret_file", "/s/signing"),
    "--slack-team-id": ("slack_team_id", "T0001"),
    "--slack-actions-port": ("slack_actions_port", "8444"),
    "--slack-actions-cert-dir": ("slack_actions_cert_dir", "/s/tls"),
    "--google-chat-webhook-file": ("google_chat_webhook_file", "/s/chat"),
}


def test_every_notification_flag_reaches_its_setting(key_file):
    argv = ["--attestation-key-file", str(key_file)]
    for name, (_, value) in NOTIFY_SAMPLES.items():
        argv += [name, value]
    notify = operator_config(parse(argv)).notify
    default = operator_config(parse(["--attestation-key-file", str(key_file)])).notify
    for name, (field, value) in NOTIFY_SAMPLES.items():
        assert str(getattr(notify, field)) == value != str(getattr(default, field)), name
    assert operator_config(parse(argv)).identity.chat_approvals
    no_secret = [
        f"{flag.name}" for flag in RUN_FLAGS if any(w in flag.name for w in ("token", "secret", "password"))
    ]
    assert all(name.endswith("-file") for name in no_secret), no_secret


def test_slack_clicks_need_the_signing_secret_and_the_token(key_file):
    with pytest.raises(SystemExit) as refused:
        operator_config(parse(["--attestation-key-file", str(key_file), "--slack-actions-port", "8444"]))
    assert "--slack-signing-secret-file" in str(refused.value)


def test_each_flag_can_be_set_from_its_environment_variable(key_file, monkeypatch):
    monkeypatch.setenv("JITACCESS_IAM_WRITES_PER_SECOND", "2.5")
    monkeypatch.setenv("JITACCESS_NAMESPACES", "a, b")
    monkeypatch.setenv("JITACCESS_LEADER_ELECT", "true")
    monkeypatch.setenv("POD_NAME", "pod-7")
    monkeypatch.setenv("JITACCESS_ATTESTATION_KEY_FILE", str(key_file))
    config = operator_config(parse([]))
    assert config.iam_writes_per_s == 2.5 and config.namespaces == ("a", "b")
    assert config.leader_election and config.leader_election_identity == "pod-7"


def test_without_a_key_it_refuses_naming_the_way_out(key_file):
    with pytest.raises(SystemExit) as refused:
        operator_config(parse([]))
    assert "--attestation-key-file" in str(refused.value) and "--insecure-no-admission" in str(refused.value)


def test_the_operations_guide_shows_the_table_as_it_is():
    assert markdown_table(RUN_FLAGS) in DOCS.read_text(), (
        "docs/operations.md's flag table is not current: paste jitaccess.run_flags.markdown_table(RUN_FLAGS)"
    )
