"""The operator's own log lines: JSON on stdout in Cloud Logging's structured format.

GKE's agent turns each line into a LogEntry: `severity` is honoured (a plain line on stderr is
filed as ERROR), `message` is the summary, `time` the timestamp, and
`logging.googleapis.com/labels` become the entry's labels — here the replica (the pod) and
whether it leads, so `labels.leader="true"` finds the replica that acts, and `labels."jitaccess.dev/log"`
separates these lines ("operator") from the audit log's ("audit", controller/audit.py), which
share stdout. Formatting is python-json-logger's; this module only names the fields.
"""

from __future__ import annotations

import functools
import logging
import os
import socket
import sys
from datetime import UTC, datetime
from typing import Any

from pythonjsonlogger.json import JsonFormatter

LABELS = "logging.googleapis.com/labels"
STREAM = "jitaccess.dev/log"
# Whether this replica leads, as the leader elector last said ("unknown" before it has).
_leading = {"state": "unknown"}


def set_leading(leading: bool) -> None:
    _leading["state"] = "true" if leading else "false"


@functools.cache
def replica() -> str:
    return os.environ.get("POD_NAME") or socket.gethostname()


class CloudLoggingFormatter(JsonFormatter):
    def __init__(self) -> None:
        super().__init__("%(message)s", json_ensure_ascii=False)
        self.replica = replica()

    def add_fields(
        self, log_record: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        super().add_fields(log_record, record, message_dict)
        log_record["severity"] = record.levelname
        log_record["time"] = datetime.fromtimestamp(record.created, UTC).isoformat().replace("+00:00", "Z")
        log_record["logger"] = record.name
        log_record[LABELS] = {STREAM: "operator", "replica": self.replica, "leader": _leading["state"]}


def configure_logging(verbose: bool, form: str = "text") -> None:
    """INFO and up from jitaccess (leadership, deletions, retries); kopf's own only with -v.
    `form`: json (Cloud Logging, on stdout) or text (a terminal, on stderr)."""
    if form == "json":
        handler: logging.Handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(CloudLoggingFormatter())
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    if not verbose:
        logging.getLogger("kopf").setLevel(logging.ERROR)
        # kopf logs every refused admission as an error; refusing is the webhooks' job, not a failure.
        logging.getLogger("kopf.objects").setLevel(logging.CRITICAL)
        logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
