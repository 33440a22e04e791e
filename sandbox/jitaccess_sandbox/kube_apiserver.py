"""A real kube-apiserver and etcd on 127.0.0.1, started as controller-runtime's envtest starts them.

The binaries come from the folder `KUBEBUILDER_ASSETS` names (the envtest convention; get them
with `setup-envtest use -p path`). The server authenticates the sandbox's people with a static
token file (the same users, groups and tokens as the sandbox API), authorizes with RBAC, serves
TLS with a certificate made here, and keeps its data in etcd under the state folder.
"""

from __future__ import annotations

import asyncio
import csv
import os
import shutil
import signal
import socket
import ssl
import subprocess
from pathlib import Path

import aiohttp
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from jitaccess.controller.tls import ServingCertificate

ASSETS_VARIABLE = "KUBEBUILDER_ASSETS"


def assets_dir() -> Path | None:
    """The folder with kube-apiserver and etcd, if KUBEBUILDER_ASSETS names one."""
    configured = os.environ.get(ASSETS_VARIABLE)
    if not configured:
        return None
    folder = Path(configured)
    if all((folder / binary).is_file() for binary in ("kube-apiserver", "etcd")):
        return folder
    return None


def why_not_available() -> str:
    """One line saying why no real kube-apiserver can be started here."""
    configured = os.environ.get(ASSETS_VARIABLE)
    if not configured:
        return f"{ASSETS_VARIABLE} is not set (setup-envtest use -p path gives a folder with kube-apiserver and etcd)"
    return f"{ASSETS_VARIABLE}={configured} has no kube-apiserver and etcd binaries"


class KubeApiServer:
    def __init__(
        self,
        assets: Path,
        directory: Path,
        serving: ServingCertificate,
        users: dict[str, list[str]],
        tokens: dict[str, str],
    ) -> None:
        self.assets, self.directory, self.serving = assets, directory, serving
        self.users, self.tokens = users, tokens  # user -> groups, user -> token
        self.port = _free_port()
        self._etcd_port, self._peer_port = _free_port(), _free_port()
        self._processes: list[subprocess.Popen[bytes]] = []

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    async def start(self, timeout_s: float = 60) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self._start("etcd", self._etcd_args())
        await self._until_healthy(f"http://127.0.0.1:{self._etcd_port}/health", None, timeout_s)
        self._start("kube-apiserver", self._apiserver_args())
        context = ssl.create_default_context(cadata=self.serving.ca_pem.decode())
        await self._until_healthy(f"{self.url}/readyz", context, timeout_s)

    async def stop(self) -> None:
        for process in reversed(self._processes):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    await asyncio.to_thread(process.wait, 20)
                except subprocess.TimeoutExpired:
                    process.kill()
        self._processes.clear()

    def pids(self) -> list[int]:
        """etcd's and kube-apiserver's, while they run (to measure their CPU)."""
        return [process.pid for process in self._processes if process.poll() is None]

    def _etcd_args(self) -> list[str]:
        data = self.directory / "etcd"
        shutil.rmtree(data, ignore_errors=True)
        client_url = f"http://127.0.0.1:{self._etcd_port}"
        return [
            f"--data-dir={data}",
            f"--listen-client-urls={client_url}",
            f"--advertise-client-urls={client_url}",
            f"--listen-peer-urls=http://127.0.0.1:{self._peer_port}",
            "--unsafe-no-fsync=true",
        ]

    def _apiserver_args(self) -> list[str]:
        """controller-runtime envtest's defaults, with static tokens for the sandbox's people."""
        key_file, public_file = self._service_account_keys()
        return [
            "--advertise-address=127.0.0.1",
            "--bind-address=127.0.0.1",
            f"--secure-port={self.port}",
            f"--etcd-servers=http://127.0.0.1:{self._etcd_port}",
            f"--cert-dir={self.directory / 'certs'}",
            f"--tls-cert-file={self.serving.certfile}",
            f"--tls-private-key-file={self.serving.keyfile}",
            "--service-cluster-ip-range=10.0.0.0/24",
            "--allow-privileged=true",
            "--disable-admission-plugins=ServiceAccount",
            "--authorization-mode=RBAC",
            f"--token-auth-file={self._token_file()}",
            f"--service-account-issuer={self.url}/",
            f"--service-account-key-file={public_file}",
            f"--service-account-signing-key-file={key_file}",
        ]

    def _token_file(self) -> Path:
        path = self.directory / "tokens.csv"
        with path.open("w", newline="") as handle:
            writer = csv.writer(handle)
            for user, token in self.tokens.items():
                writer.writerow([token, user, user, ",".join(self.users.get(user, []))])
        path.chmod(0o600)
        return path

    def _service_account_keys(self) -> tuple[Path, Path]:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        key_file, public_file = self.directory / "sa.key", self.directory / "sa.pub"
        key_file.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        public_file.write_bytes(
            key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        return key_file, public_file

    def _start(self, binary: str, args: list[str]) -> None:
        log = open(self.directory / f"{binary}.log", "ab")
        self._processes.append(
            subprocess.Popen([str(self.assets / binary), *args], stdout=log, stderr=subprocess.STDOUT)
        )
        log.close()

    async def _until_healthy(self, url: str, context: ssl.SSLContext | None, timeout_s: float) -> None:
        deadline = asyncio.get_running_loop().time() + timeout_s
        headers = {"Authorization": f"Bearer {self.tokens['admin']}"} if context else {}
        async with aiohttp.ClientSession() as session:
            while True:
                for process in self._processes:
                    if process.poll() is not None:
                        raise RuntimeError(
                            f"{process.args[0]} exited with {process.returncode}; see {self.directory}"
                        )
                try:
                    async with session.get(url, ssl=context or False, headers=headers) as answer:
                        if answer.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                if asyncio.get_running_loop().time() > deadline:
                    raise TimeoutError(f"{url} did not answer within {timeout_s:.0f}s; see {self.directory}")
                await asyncio.sleep(0.2)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
