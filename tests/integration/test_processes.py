"""The production entry point: `jitaccess run` as its own process, against a cluster and an emulator that
are separate processes too, found only through a kubeconfig and --iam-endpoint."""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from kubernetes import client

from jitaccess.controller.operator import kubernetes_configuration

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(check, what: str, timeout_s: float = 30):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            result = check()
            if result:
                return result
        except Exception:
            pass
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_operator_cluster_and_emulator_as_three_processes(tmp_path):
    iam_port, k8s_port, metrics_port, webhook_port = free_port(), free_port(), free_port(), free_port()
    key_file, cert_dir = tmp_path / "attestation.key", tmp_path / "cluster" / "webhook"
    key_file.write_text(secrets.token_hex(32))
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    logs = {name: open(tmp_path / f"{name}.log", "w") for name in ("emulator", "cluster", "operator")}
    started = []
    try:
        started.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "jitaccess_emulator",
                    "--port",
                    str(iam_port),
                    "--resource",
                    "projects/my-sandbox",
                ],
                stdout=logs["emulator"],
                stderr=subprocess.STDOUT,
                env=env,
            )
        )
        started.append(
            subprocess.Popen(
                [
                    str(BIN / "jitaccess"),
                    "sandbox",
                    "--no-operator",
                    "--port-k8s",
                    str(k8s_port),
                    "--port-webhook",
                    str(webhook_port),
                    "--state-dir",
                    str(tmp_path / "cluster"),
                ],
                stdout=logs["cluster"],
                stderr=subprocess.STDOUT,
                env=env,
            )
        )
        iam = f"http://127.0.0.1:{iam_port}"
        wait_until(lambda: urllib.request.urlopen(f"{iam}/_emulator/calls").status == 200, "the emulator")
        kubeconfig = tmp_path / "cluster" / "kubeconfig"
        wait_until(kubeconfig.exists, "the cluster's kubeconfig")
        started.append(
            subprocess.Popen(
                [
                    str(BIN / "jitaccess"),
                    "run",
                    "--kubeconfig",
                    str(kubeconfig),
                    "--context",
                    "admin",
                    "--iam-endpoint",
                    iam,
                    "--metrics-port",
                    str(metrics_port),
                    "--metrics-host",
                    "127.0.0.1",
                    "--attestation-key-file",
                    str(key_file),
                    "--webhook-host",
                    "127.0.0.1",
                    "--webhook-port",
                    str(webhook_port),
                    "--webhook-cert-dir",
                    str(cert_dir),
                    "--trusted-submitter",
                    "admin",
                    "--leader-elect",
                    "--leader-election-identity",
                    "process-operator",
                ],
                stdout=logs["operator"],
                stderr=subprocess.STDOUT,
                env=env,
            )
        )

        custom = client.CustomObjectsApi(client.ApiClient(kubernetes_configuration(kubeconfig, "admin")))
        wait_until(
            lambda: (
                custom.list_cluster_custom_object("jitaccess.dev", "v1alpha1", "eligiblegrants") is not None
            ),
            "the cluster API",
        )
        # The sandbox installed manifests/webhooks.yaml pointing at webhook_port before it served.
        wait_until(lambda: socket.create_connection(("127.0.0.1", webhook_port)).close() or True, "webhooks")
        custom.create_cluster_custom_object(
            "jitaccess.dev",
            "v1alpha1",
            "eligiblegrants",
            {
                "apiVersion": "jitaccess.dev/v1alpha1",
                "kind": "EligibleGrant",
                "metadata": {"name": "three"},
                "spec": {
                    "resource": "projects/my-sandbox",
                    "roles": ["roles/compute.admin"],
                    "principals": ["user:alice@example.com"],
                    "maxDuration": "1h",
                },
            },
        )
        custom.create_namespaced_custom_object(
            "jitaccess.dev",
            "v1alpha1",
            "team-sre",
            "activationrequests",
            {
                "apiVersion": "jitaccess.dev/v1alpha1",
                "kind": "ActivationRequest",
                "metadata": {"name": "three-alice", "namespace": "team-sre"},
                "spec": {
                    "grant": "three",
                    "justification": "INC-1: three processes",
                    "requester": "user:alice@example.com",
                },
            },
        )

        def active():
            body = custom.get_namespaced_custom_object(
                "jitaccess.dev", "v1alpha1", "team-sre", "activationrequests", "three-alice"
            )
            return (body.get("status") or {}).get("phase") == "Active"

        wait_until(active, "the request to become Active")
        policy = json.load(urllib.request.urlopen(f"{iam}/_emulator/policies/projects/my-sandbox"))
        assert [(b["role"], b["members"]) for b in policy["bindings"]] == [
            ("roles/compute.admin", ["user:alice@example.com"])
        ]

        def metrics() -> str:
            return urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics").read().decode()

        wait_until(
            lambda: 'jitaccess_requests{phase="Active"} 1.0' in metrics(), "the Active request in /metrics"
        )
        scraped = metrics()
        assert 'jitaccess_iam_calls_total{method="setIamPolicy"} 1.0' in scraped
        assert "jitaccess_grants 1.0" in scraped
        assert urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/healthz").read() == b"ok\n"
        # Ready: the grants are listed and the webhook server answers (the probe the Deployment uses).
        assert urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/readyz").read() == b"ok\n"
        logs["operator"].flush()
        lines = [
            json.loads(line)
            for line in (tmp_path / "operator.log").read_text().splitlines()
            if line.startswith("{")
        ]
        # Its own lines, for Cloud Logging: severity honoured, the leader found by its label.
        (leading,) = [line for line in lines if "is the leader" in line.get("message", "")]
        assert leading["severity"] == "INFO" and leading["logger"] == "jitaccess.controller.leader"
        labels = leading["logging.googleapis.com/labels"]
        assert labels["jitaccess.dev/log"] == "operator" and labels["leader"] == "true" and labels["replica"]
        audit = [
            line for line in lines if line["logging.googleapis.com/labels"]["jitaccess.dev/log"] == "audit"
        ]
        assert audit and all(line["severity"] in ("NOTICE", "WARNING", "ALERT") for line in audit)
    finally:
        for process in reversed(started):
            process.terminate()
        for process in started:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
        for log in logs.values():
            log.close()


def test_the_operator_refuses_to_start_without_an_attestation_key(tmp_path):
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\n")
    started = subprocess.run(
        [sys.executable, "-m", "jitaccess.cli", "run", "--kubeconfig", str(kubeconfig)],
        capture_output=True,
        text=True,
        timeout=60,
        env={name: value for name, value in os.environ.items() if not name.startswith("JITACCESS_")},
    )
    assert started.returncode != 0
    assert "--attestation-key-file" in started.stderr and "--insecure-no-admission" in started.stderr
