"""Which channels the operator sends on, from its flags: each optional, secrets read from files."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml
from slack_sdk.web.async_client import AsyncWebClient

from jitaccess.api.names import normal_member
from jitaccess.clock import Clock
from jitaccess.controller.channels import Channel, read_secret
from jitaccess.controller.channels.email import EmailChannel, SmtpSettings
from jitaccess.controller.channels.google_chat import GoogleChatChannel
from jitaccess.controller.channels.slack import SlackChannel
from jitaccess.controller.channels.webhook import WebhookChannel

SLACK_API = "https://slack.com/api/"


@dataclass(frozen=True)
class NotifySettings:
    """Where notices go. Paths name files holding secrets (mounted from Secrets), never the secret."""

    webhook_url: str | None = None
    webhook_secret_file: Path | None = None
    smtp_host: str | None = None
    smtp_port: int = 587
    smtp_security: str = "starttls"
    smtp_from: str = "jitaccess@localhost"
    smtp_username: str | None = None
    smtp_password_file: Path | None = None
    smtp_ca_file: Path | None = None
    group_addresses_file: Path | None = None  # YAML: group:sre@example.com: [a@example.com, ...]
    slack_token_file: Path | None = None
    slack_channel: str | None = None  # the default channel (ID), for grants that name none
    slack_api_url: str = SLACK_API
    slack_signing_secret_file: Path | None = None
    slack_team_id: str | None = None  # clicks from another workspace are refused
    slack_actions_port: int | None = None  # serve Slack's interactivity requests here
    slack_actions_host: str = "0.0.0.0"
    slack_actions_cert_dir: Path | None = None  # tls.crt and tls.key; plain HTTP when absent
    google_chat_webhook_file: Path | None = None

    def slack_client(self) -> AsyncWebClient | None:
        token = read_secret(
            str(self.slack_token_file) if self.slack_token_file else None, "--slack-token-file"
        )
        return AsyncWebClient(token=token, base_url=self.slack_api_url) if token else None


def build_channels(settings: NotifySettings, clock: Clock) -> list[Channel]:
    channels: list[Channel] = []
    if settings.smtp_host:
        channels.append(EmailChannel(smtp_settings(settings)))
    slack = settings.slack_client()
    if slack is not None:
        channels.append(SlackChannel(slack, settings.slack_channel))
    chat = _path_secret(settings.google_chat_webhook_file, "--google-chat-webhook-file")
    if chat:
        channels.append(GoogleChatChannel(chat))
    if settings.webhook_url:
        secret = _path_secret(settings.webhook_secret_file, "--notify-signing-secret-file")
        channels.append(WebhookChannel(settings.webhook_url, clock, secret))
    return channels


def smtp_settings(settings: NotifySettings) -> SmtpSettings:
    assert settings.smtp_host is not None
    return SmtpSettings(
        host=settings.smtp_host,
        port=settings.smtp_port,
        security=settings.smtp_security,
        from_address=settings.smtp_from,
        username=settings.smtp_username,
        password=_path_secret(settings.smtp_password_file, "--smtp-password-file"),
        ca_file=str(settings.smtp_ca_file) if settings.smtp_ca_file else None,
        groups=group_addresses(settings.group_addresses_file),
    )


def group_addresses(path: Path | None) -> dict[str, tuple[str, ...]]:
    """The group mapping: which addresses read mail for each group (no mapping, no group mail)."""
    if path is None:
        return {}
    found = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(found, dict) or not all(
        isinstance(k, str) and isinstance(v, list) and all(isinstance(a, str) for a in v)
        for k, v in found.items()
    ):
        raise ValueError(f"{path}: must map each group (group:NAME@DOMAIN) to a list of e-mail addresses")
    return {normal_member(k if k.startswith("group:") else f"group:{k}"): tuple(v) for k, v in found.items()}


def _path_secret(path: Path | None, what: str) -> str | None:
    return read_secret(str(path) if path else None, what)
