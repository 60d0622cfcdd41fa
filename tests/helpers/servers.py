"""Private server instances for tests that stop, restart, fill or break a server.

Each runs on a free loopback port in a temporary directory, never touching the
shared servers. PostgreSQL refuses to run as root, so it runs as `postgres`.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.helpers.netfaults import free_port
from tests.helpers.processes import wait_port


def _pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        raise FileNotFoundError(f"PostgreSQL's {name} not found (Debian package postgresql)")
    return found[-1]


class PrivatePostgres:
    """Password auth (scram-sha-256) on TCP; superuser `postgres` with `password`."""

    def __init__(
        self, password: str = "pg-Priv4te-pw", max_connections: int = 20, tls: tuple[Path, Path] | None = None
    ):
        self.password = password
        self.tls = tls  # (certificate, key): serve TLS with them
        self.max_connections = max_connections
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="probe-agent-pg-"))
        shutil.chown(self.dir, "postgres", "postgres")
        pwfile = self.dir / "pw"
        pwfile.write_text(password)
        shutil.chown(pwfile, "postgres", "postgres")
        self.data = self.dir / "data"
        self._as_postgres(
            _pg_bin("initdb"),
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth-host=scram-sha-256",
            "--auth-local=trust",
            f"--pwfile={pwfile}",
            "-E",
            "UTF8",
            "--no-sync",
        )
        if tls is not None:
            for source, name in zip(tls, ("server.crt", "server.key"), strict=False):
                target = self.dir / name
                shutil.copy(source, target)
                shutil.chown(target, "postgres", "postgres")
                target.chmod(0o600)  # PostgreSQL refuses a key others can read

    def _as_postgres(self, *cmd: str) -> None:
        subprocess.run(["runuser", "-u", "postgres", "--", *cmd], check=True, capture_output=True, timeout=60)

    def start(self) -> PrivatePostgres:
        options = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} -c unix_socket_directories={self.dir} "
            f"-c fsync=off -c max_connections={self.max_connections} -c superuser_reserved_connections=1"
        )
        if self.tls is not None:
            options += (
                f" -c ssl=on -c ssl_cert_file={self.dir / 'server.crt'} -c ssl_key_file={self.dir / 'server.key'}"
            )
        self._as_postgres(
            _pg_bin("pg_ctl"), "-D", str(self.data), "-w", "-l", str(self.dir / "log"), "-o", options, "start"
        )
        wait_port(self.port)
        return self

    def stop(self) -> None:
        subprocess.run(
            [
                "runuser",
                "-u",
                "postgres",
                "--",
                _pg_bin("pg_ctl"),
                "-D",
                str(self.data),
                "-m",
                "immediate",
                "-w",
                "stop",
            ],
            capture_output=True,
            timeout=60,
        )
        wait_port(self.port, up=False)

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class ProcessServer:
    """A server we run as a child process; stop() kills it (as a crash would) and waits on its port."""

    def __init__(self, prefix: str):
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix=f"probe-agent-{prefix}-"))
        self.proc: subprocess.Popen[bytes] | None = None

    def spawn(self, args: list[str], *ports: int) -> None:
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for port in ports or (self.port,):
            wait_port(port, timeout=60)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(30)
            self.proc = None
        wait_port(self.port, up=False)

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class PrivateDnsmasq(ProcessServer):
    """Debian's dnsmasq on a private loopback port, answering for probe.test only, from the
    records a test gives (dnsmasq options: --host-record=..., --srv-host=...)."""

    def __init__(self, prefix: str = "dns") -> None:
        super().__init__(prefix)

    def start_with(self, *records: str) -> None:
        self.spawn(
            [
                "dnsmasq",
                "--keep-in-foreground",
                f"--port={self.port}",
                "--listen-address=127.0.0.1",
                "--bind-interfaces",
                "--no-resolv",
                "--no-hosts",
                "--conf-file=/dev/null",
                "--pid-file=",
                "--user=root",
                "--local=/probe.test/",
                *records,
                f"--log-facility={self.dir / 'log'}",
            ]
        )


class PrivateMariaDB(ProcessServer):
    """Root over the socket; TCP user `probe` with `password`."""

    def __init__(self, password: str = "my-Priv4te-pw", max_connections: int = 20):
        super().__init__("my")
        self.password = password
        self.max_connections = max_connections
        self.data = self.dir / "data"
        subprocess.run(
            [
                "mariadb-install-db",
                "--no-defaults",
                "--user=root",
                f"--datadir={self.data}",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )
        self._initialised = False

    def start(self) -> PrivateMariaDB:
        self.spawn(
            [
                "mariadbd",
                "--no-defaults",
                "--user=root",
                f"--datadir={self.data}",
                "--bind-address=127.0.0.1",
                f"--port={self.port}",
                f"--socket={self.dir / 'sock'}",
                f"--max-connections={self.max_connections}",
                "--skip-log-bin",
                "--innodb-buffer-pool-size=16M",
                f"--log-error={self.dir / 'err.log'}",
                f"--pid-file={self.dir / 'pid'}",
            ]
        )
        if not self._initialised:
            self.sql(
                f"CREATE USER 'probe'@'%' IDENTIFIED BY '{self.password}'; "
                "GRANT ALL ON *.* TO 'probe'@'%'; CREATE DATABASE app;"
            )
            self._initialised = True
        return self

    def sql(self, statements: str) -> None:
        subprocess.run(
            ["mariadb", "--no-defaults", "-uroot", f"--socket={self.dir / 'sock'}", "-e", statements],
            check=True,
            capture_output=True,
            timeout=30,
        )


class PrivateRedis(ProcessServer):
    def __init__(self, password: str | None = "rd-Priv4te-pw", tls: tuple[Path, Path] | None = None):
        super().__init__("redis")
        self.password = password
        self.tls = tls  # (certificate, key): TLS only, on `port`

    def start(self) -> PrivateRedis:
        args = [
            "redis-server",
            "--bind",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.dir),
        ]
        if self.password:
            args += ["--requirepass", self.password]
        if self.tls is not None:
            args[args.index("--port") + 1] = "0"
            args += [
                "--tls-port",
                str(self.port),
                "--tls-cert-file",
                str(self.tls[0]),
                "--tls-key-file",
                str(self.tls[1]),
                "--tls-auth-clients",
                "no",
            ]
        self.spawn(args)
        return self


def have(binary: str) -> bool:
    return shutil.which(binary) is not None or os.path.exists(f"/usr/sbin/{binary}")


class PrivateNats(ProcessServer):
    """nats-server with JetStream and a monitoring port; optional user/password auth."""

    def __init__(self, user: str | None = None, password: str | None = None):
        super().__init__("nats")
        self.user, self.password = user, password
        self.monitor_port = free_port()

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    @property
    def monitor_url(self) -> str:
        return f"http://127.0.0.1:{self.monitor_port}"

    def start(self) -> PrivateNats:
        args = [
            "nats-server",
            "-a",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-m",
            str(self.monitor_port),
            "-js",
            "-sd",
            str(self.dir / "js"),
        ]
        if self.user:
            args += ["--user", self.user, "--pass", self.password or ""]
        self.spawn(args, self.port, self.monitor_port)
        return self
