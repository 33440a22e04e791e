"""Bounds of the API, in one place: the parsers enforce them and the CRDs are generated from
them (`jitaccess.api.schema_rules`)."""

from __future__ import annotations

import re
from datetime import timedelta

SHORTEST_GRANT = timedelta(minutes=5)
LONGEST_GRANT = timedelta(days=7)
DEFAULT_APPROVAL_TIMEOUT = timedelta(hours=1)
DEFAULT_REVIEW_WITHIN = timedelta(hours=24)
MAX_ROLES = 20
MAX_PRINCIPALS = 100
MAX_APPROVAL_STEPS = 5
MAX_JUSTIFICATION = 1024
MAX_COMMENT = 1024  # an approval's comment, as the CRD's maxLength
MAX_PATTERN = 512
K8S_NAME = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")
