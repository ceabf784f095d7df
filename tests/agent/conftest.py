"""Fixtures for the agent tests: a real redis-server, a real chronyd (NTP server with a
command socket for chronyc), and our own NTP server — all on 127.0.0.1, all stopped by PID."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from clocksync.ntp import NtpClient
from tests._chronyd import chronyd_process

REDIS_PASSWORD = "agent-test-Pa55"


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# Servers started as our children, by PID: kept so that they are reaped (and so that the
# interpreter never finds a Popen of a running process to complain about).
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


def kill_pid(pid: int) -> None:
    """Stop a process by PID: SIGTERM, SIGKILL after 2.5 s; a child of ours is reaped."""
    child = _CHILDREN.pop(pid, None)
    if child is not None:
        child.terminate()
        try:
            child.wait(timeout=2.5)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 2.5
    while time.monotonic() < deadline:
        if _gone(pid):
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    while not _gone(pid):
        time.sleep(0.01)


def _gone(pid: int) -> bool:
    """True once ``pid`` (not our child) has exited."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


@dataclass(frozen=True)
class RedisServer:
    port: int
    password: str

    def url(self, db: int = 0, password: bool = True, query: str = "") -> str:
        auth = f":{self.password}@" if password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/{db}" + (f"?{query}" if query else "")


def start_redis(port: int, workdir: Path, password: str | None = None,
                tls: tuple[Path, Path, Path] | None = None) -> int:
    """Start redis-server on 127.0.0.1:``port`` as our child (in the foreground: its PID is
    known at once, no pidfile to race); returns the PID once it accepts connections, and
    stops it by that PID if it never does. ``tls``: (CA cert, server cert, server key) —
    TLS only on ``port``."""
    logfile = workdir / f"redis-{port}.log"
    args = ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "",
            "--appendonly", "no", "--daemonize", "no", "--dir", str(workdir),
            "--logfile", str(logfile)]
    if password:
        args += ["--requirepass", password]
    if tls:
        args[args.index("--port") + 1] = "0"
        args += ["--tls-port", str(port), "--tls-ca-cert-file", str(tls[0]),
                 "--tls-cert-file", str(tls[1]), "--tls-key-file", str(tls[2]),
                 "--tls-auth-clients", "no"]
    proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    _CHILDREN[proc.pid] = proc
    deadline = time.monotonic() + 10
    while not _answers(port):
        if proc.poll() is not None or time.monotonic() > deadline:
            kill_pid(proc.pid)
            log = logfile.read_text(errors="replace") if logfile.exists() else "(no log)"
            pytest.fail(f"redis-server on port {port} did not start: {log}")
        time.sleep(0.05)
    return proc.pid


def needs_redis() -> None:
    if shutil.which("redis-server") is None:
        pytest.skip("needs redis-server on PATH (apt-get install redis-server)")


@contextlib.contextmanager
def redis_running(password: str, prefix: str) -> Iterator[int]:
    """A real redis-server requiring ``password`` on a free loopback port (skips the test
    without redis-server); yields the port, kills it and removes its directory after."""
    needs_redis()
    workdir = Path(tempfile.mkdtemp(prefix=prefix))
    pid = None
    try:
        port = free_port()
        pid = start_redis(port, workdir, password)
        yield port
    finally:
        if pid is not None:
            kill_pid(pid)
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A real redis-server (password required) on a free loopback port."""
    with redis_running(REDIS_PASSWORD, "csagent_redis_") as port:
        yield RedisServer(port, REDIS_PASSWORD)


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


@dataclass(frozen=True)
class Chronyd:
    host: str
    port: int
    command_socket: str


@pytest.fixture(scope="session")
def chronyd() -> Iterator[Chronyd]:
    """A real chronyd (``-x``: never touches the clock) serving the system clock over NTP on
    loopback and answering chronyc on a private command socket."""
    if shutil.which("chronyd") is None or shutil.which("chronyc") is None:
        pytest.skip("needs chronyd and chronyc on PATH (apt-get install chrony)")
    if os.geteuid() != 0:
        pytest.skip("needs root: chronyd's state dir must be chowned to _chrony")
    from lab.ntp_vs_chrony import chrony_server_conf, chrony_workdir

    workdir = chrony_workdir("csagent_chrony_")
    port = free_port(socket.SOCK_DGRAM)
    conf = chrony_server_conf(workdir, allow="127.0.0.1", port=port, bind="127.0.0.1")
    sock = workdir / "chronyd.sock"
    with open(conf, "a") as handle:
        handle.write(f"bindcmdaddress {sock}\n")
    with NtpClient("127.0.0.1", port, timeout_s=0.2, interleaved=False) as client:

        def ready() -> bool:
            client.exchange()
            return sock.exists()

        with chronyd_process(conf, workdir, ready, 20, f"chronyd (port {port})"):
            yield Chronyd("127.0.0.1", port, str(sock))


@pytest.fixture(scope="session")
def chronyd_client(chronyd: Chronyd) -> Iterator[str]:
    """A second real chronyd (``-x``, measure-only) synchronised to ``chronyd`` over
    loopback; yields its command socket once it has selected that server ('*')."""
    from lab.ntp_vs_chrony import chrony_workdir

    workdir = chrony_workdir("csagent_chronyc_")
    sock = workdir / "chronyd.sock"
    conf = workdir / "client.conf"
    conf.write_text("\n".join([
        f"server {chronyd.host} port {chronyd.port} iburst minpoll -4 maxpoll -4",
        "port 0", "cmdport 0", f"bindcmdaddress {sock}", f"pidfile {workdir}/chronyd.pid",
        f"driftfile {workdir}/drift", f"logdir {workdir}"]) + "\n")

    def ready() -> bool:
        done = subprocess.run(["chronyc", "-c", "-n", "-h", str(sock), "sources"],
                              capture_output=True, text=True, timeout=5, check=False)
        return any(line.split(",")[1:2] == ["*"] for line in done.stdout.splitlines())

    with chronyd_process(conf, workdir, ready, 30, "chronyd client (selecting its server)"):
        yield str(sock)


def make_tls_files(directory: Path) -> tuple[Path, Path, Path]:
    """A throw-away CA and a server certificate for 127.0.0.1 (openssl CLI)."""
    if shutil.which("openssl") is None:
        pytest.skip("needs openssl on PATH to make test certificates")
    ca_key, ca, key, csr, cert = (directory / n for n in
                                  ("ca.key", "ca.crt", "srv.key", "srv.csr", "srv.crt"))
    ext = directory / "san.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1\n")

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=30)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key), "-out",
        str(ca), "-days", "1", "-subj", "/CN=clocksync-test-ca")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr),
        "-subj", "/CN=127.0.0.1")
    run("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
        "-CAcreateserial", "-out", str(cert), "-days", "1", "-extfile", str(ext))
    return ca, cert, key
