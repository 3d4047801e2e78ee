"""A throwaway PgBouncer in transaction mode in front of the test PostgreSQL.

Transaction pooling is how Supabase's pooler (port 6543) and most hosted
PgBouncers run: every transaction may get a different server connection, so
nothing a client leaves on a session (prepared statements, session advisory
locks, ``SET``) is there for its next transaction.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

from sqlalchemy.engine import make_url

from tests.helpers import stop_process, wait_for

#: The pgbouncer executable (Debian installs it in /usr/sbin), or None.
PGBOUNCER = shutil.which("pgbouncer") or shutil.which("pgbouncer", path="/usr/sbin:/usr/local/sbin")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class PgBouncer:
    """``pgbouncer`` on a free loopback port, forwarding every database to ``server_url``."""

    def __init__(self, server_url: str, *, pool_size: int = 3) -> None:
        server = make_url(server_url)
        self.port = _free_port()
        self.folder = Path(tempfile.mkdtemp(prefix="pgbouncer-"))
        self.folder.chmod(0o755)  # readable by the unprivileged user it runs as
        (self.folder / "userlist.txt").write_text(f'"{server.username}" ""\n')
        (self.folder / "pgbouncer.ini").write_text(
            "[databases]\n"
            f"* = host={server.host} port={server.port or 5432}\n"
            "[pgbouncer]\n"
            "listen_addr = 127.0.0.1\n"
            f"listen_port = {self.port}\n"
            "unix_socket_dir =\n"
            "auth_type = trust\n"
            f"auth_file = {self.folder / 'userlist.txt'}\n"
            "pool_mode = transaction\n"
            # Few server connections for many clients: transactions really move around.
            f"default_pool_size = {pool_size}\n"
            "max_client_conn = 200\n"
            "server_reset_query =\n"
        )
        for path in self.folder.iterdir():
            path.chmod(0o644)
        self.log_path = self.folder / "pgbouncer.log"
        self._log = self.log_path.open("wb")
        command = [PGBOUNCER or "pgbouncer", str(self.folder / "pgbouncer.ini")]
        if os.geteuid() == 0:  # PgBouncer refuses to run as root
            command[1:1] = ["-u", _unprivileged_user()]
        self.process = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT)
        wait_for(self._listening, until=bool, timeout=30, what="pgbouncer to listen")

    def _listening(self) -> bool:
        if self.process.poll() is not None:
            raise RuntimeError(f"pgbouncer exited:\n{self.log()}")
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
        except OSError:
            return False
        return True

    def url_for(self, database_url: str) -> str:
        """``database_url`` rewritten to go through this pooler."""
        url = make_url(database_url).set(host="127.0.0.1", port=self.port)
        return url.render_as_string(hide_password=False)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        stop_process(self.process, timeout=10)
        self._log.close()
        shutil.rmtree(self.folder, ignore_errors=True)


def _unprivileged_user() -> str:
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        return name
    raise RuntimeError("no unprivileged user to run pgbouncer as")
