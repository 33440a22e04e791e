"""What `jitaccess run` is configured with (flags and environment, see API.md "Configuration")."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from jitaccess.clock import Clock, SystemClock
from jitaccess.controller.channels.setup import NotifySettings
from jitaccess.controller.leader import LeaseTimings
from jitaccess.policy.admission import IdentitySettings


@dataclass
class OperatorConfig:
    namespaces: tuple[str, ...] = ()
    all_namespaces: bool = True
    iam_endpoint: str | None = None
    history_retention: timedelta = timedelta(days=30)
    metrics_port: int | None = None  # /metrics and /healthz, when given
    metrics_host: str = "0.0.0.0"
    # How often the scheduler looks at the clock; bounds the lag after a ManualClock jump.
    tick_s: float = 0.5
    # Requests reconciled at once. A reconcile mostly waits (on its IAM batch, on the API), so
    # this is high; what bounds the load on the API servers is `api_threads`.
    concurrency: int = 256
    # Blocking Kubernetes and IAM client calls in flight, and the connections of the operator's
    # own HTTP session to the Kubernetes API (its hot calls: kube.KubeHttp).
    api_threads: int = 32
    clock: Clock = field(default_factory=SystemClock)
    # Admission webhooks: served when a port is given.
    webhook_port: int | None = None
    webhook_host: str = "127.0.0.1"
    webhook_cert_dir: Path | None = None  # holds tls.crt, tls.key, ca.crt; generated when absent
    identity: IdentitySettings = field(default_factory=IdentitySettings)
    # Seals admitted objects, the operator's records and its binding references. Required: with
    # `insecure_no_admission` a random one is made, so nothing admitted elsewhere verifies.
    attestation_key: bytes = b""
    insecure_no_admission: bool = False
    # The operator's own Kubernetes username (the only one that may change jitaccess.dev/
    # metadata); asked of the API server (SelfSubjectReview) at start when not given.
    operator_username: str = ""
    notify: NotifySettings = field(default_factory=NotifySettings)  # who is told, and how
    # IAM writes: "batched" coalesces changes per resource under a rate limit;
    # "per-activation" is one read-modify-write per request, as Google's JIT Access does.
    iam_write_mode: str = "batched"
    iam_writes_per_s: float = 8.0
    iam_batch_window_s: float = 0.02
    # How often IAM is swept for our leftover bindings and for bindings others removed (0: never).
    sweep_interval: timedelta = timedelta(minutes=5)
    # Where the audit log goes: "stdout" (for Cloud Logging), "off", or a file to append to.
    audit_log: str = "stdout"
    # Two replicas: with leader election, only the holder of the Lease reconciles.
    leader_election: bool = False
    leader_election_namespace: str = "jitaccess-system"
    leader_election_lease: str = "jitaccess"
    leader_election_identity: str = ""  # the pod name; a restarted container takes its lease back at once
    lease_timings: LeaseTimings = field(default_factory=LeaseTimings)
    # The lease's own clock, apart from `clock`: a test that jumps ahead to expire requests must
    # not also expire the leader's lease, and a failover test jumps this one alone.
    lease_clock: Clock = field(default_factory=SystemClock)
