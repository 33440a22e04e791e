"""E-mail over SMTP (STARTTLS, implicit TLS, or none on a trusted relay), with smtplib.

Addresses come from the IAM members told: `user:` members are mailboxes; a `group:` is mailed
only when the group mapping names its addresses (a Google group's own address may be a mailing
list or may not be: the operator does not guess); other members have no mailbox.
"""

from __future__ import annotations

import asyncio
import html
import smtplib
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any

from jitaccess.controller.channels import Undeliverable
from jitaccess.controller.channels.render import facts, inert, subject, text
from jitaccess.policy.notices import Told

SECURITY = ("starttls", "tls", "none")


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int = 587
    security: str = "starttls"
    from_address: str = "jitaccess@localhost"
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_file: str | None = None  # the CA that signed the server's certificate (default: the system's)
    # group member (group:sre@example.com) -> the addresses that read mail for it
    groups: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    timeout_s: float = 10.0

    def __post_init__(self) -> None:
        if self.security not in SECURITY:
            raise ValueError(f"--smtp-security must be one of {', '.join(SECURITY)}, not {self.security!r}")


class EmailChannel:
    name = "email"

    def __init__(self, settings: SmtpSettings) -> None:
        self.settings = settings

    def addresses(self, told: Told) -> list[str]:
        found: list[str] = []
        for member in told.to:
            kind, _, address = member.partition(":")
            if kind == "user":
                found.append(address)
            elif kind == "group":
                found += self.settings.groups.get(member, ())
        return sorted(set(found))

    def wants(self, told: Told) -> bool:
        return bool(self.addresses(told))

    async def send(self, told: Told, ledger: Mapping[str, Any]) -> dict[str, Any]:
        recipients = self.addresses(told)
        message = self.message(told, recipients)
        refused = await asyncio.to_thread(self._send, message, recipients)
        # Some refused, some not: it was sent (again would duplicate it for the others).
        return {"to": len(recipients) - len(refused), **({"refused": sorted(refused)} if refused else {})}

    def message(self, told: Told, recipients: list[str]) -> EmailMessage:
        message = EmailMessage()
        message["Subject"] = subject(told)
        message["From"] = self.settings.from_address
        message["To"] = ", ".join(recipients)
        domain = self.settings.from_address.rpartition("@")[2] or None
        message["Message-ID"] = make_msgid(f"{told.uid}.{told.notice.key}", domain=domain)
        message.set_content(text(told))
        message.add_alternative(_html(told), subtype="html")
        return message

    def _send(self, message: EmailMessage, recipients: list[str]) -> dict[str, Any]:
        settings = self.settings
        context = ssl.create_default_context(cafile=settings.ca_file)
        try:
            if settings.security == "tls":
                server: smtplib.SMTP = smtplib.SMTP_SSL(
                    settings.host, settings.port, timeout=settings.timeout_s, context=context
                )
            else:
                server = smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout_s)
            with server:
                if settings.security == "starttls":
                    server.starttls(context=context)
                if settings.username:
                    server.login(settings.username, settings.password or "")
                refused = server.send_message(message, to_addrs=recipients)
        except smtplib.SMTPAuthenticationError as error:
            raise Undeliverable(f"the SMTP server refused the login: {error.smtp_code}") from error
        except smtplib.SMTPNotSupportedError as error:
            raise Undeliverable(
                f"the SMTP server does not offer it ({error}); check --smtp-security"
            ) from error
        except smtplib.SMTPRecipientsRefused as error:
            raise Undeliverable(f"every recipient was refused: {', '.join(error.recipients)}") from error
        return dict(refused)


def _html(told: Told) -> str:
    rows = "".join(
        f"<tr><th align='left'>{html.escape(label)}</th><td>{html.escape(value)}</td></tr>"
        for label, value in facts(told)
    )
    commands = "".join(f"<li><code>{html.escape(command)}</code></li>" for command in told.commands())
    return (
        f"<html><body><p><strong>{html.escape(told.headline)}</strong></p>"
        f"<p>{html.escape(inert(told.notice.message))}</p><table>{rows}</table>"
        f"<p>{'To act' if told.answerable else 'To see more'}:</p><ul>{commands}</ul></body></html>"
    )
