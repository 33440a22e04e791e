"""The real kube-apiserver is started as controller-runtime's envtest starts it, with the sandbox's
people as static token users (checked without the binaries: the flags and files it would use)."""

from __future__ import annotations

import csv
from pathlib import Path

from jitaccess.controller.tls import make_serving_certificate
from jitaccess_sandbox.kube_apiserver import KubeApiServer, assets_dir, why_not_available


def test_flags_follow_envtest_and_users_come_from_a_token_file(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("KUBEBUILDER_ASSETS", raising=False)
    assert assets_dir() is None and "KUBEBUILDER_ASSETS is not set" in why_not_available()
    serving = make_serving_certificate(tmp_path / "tls", ["127.0.0.1"])
    users = {"admin": ["system:masters"], "alice@example.com": ["sre@example.com"]}
    server = KubeApiServer(
        tmp_path, tmp_path / "k", serving, users, {"admin": "t-admin", "alice@example.com": "t-alice"}
    )
    (tmp_path / "k").mkdir()
    args = dict(arg.removeprefix("--").split("=", 1) for arg in server._apiserver_args())
    assert args["authorization-mode"] == "RBAC" and args["disable-admission-plugins"] == "ServiceAccount"
    assert args["service-cluster-ip-range"] == "10.0.0.0/24" and args["allow-privileged"] == "true"
    assert args["secure-port"] == str(server.port) and args["bind-address"] == "127.0.0.1"
    assert args["tls-cert-file"] == str(serving.certfile)
    assert args["service-account-issuer"] == f"https://127.0.0.1:{server.port}/"
    rows = list(csv.reader(Path(args["token-auth-file"]).open()))
    assert ["t-alice", "alice@example.com", "alice@example.com", "sre@example.com"] in rows
    assert Path(args["service-account-key-file"]).read_text().startswith("-----BEGIN PUBLIC KEY-----")
    etcd = dict(arg.removeprefix("--").split("=", 1) for arg in server._etcd_args())
    assert etcd["unsafe-no-fsync"] == "true" and etcd["listen-client-urls"].startswith("http://127.0.0.1:")
