"""A throwaway PostgreSQL server for tests: initdb into a temp dir, start on a free port.

Uses Debian's server binaries (`.ci/run` installs the `postgresql` package). PostgreSQL
refuses to run as root, so as root the server runs as the `postgres` system user.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import time
from pathlib import Path

from recall.judge.server import free_port


def server_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}")) or [shutil.which(name)]
    if not found[-1]:
        raise RuntimeError(f"PostgreSQL's {name} not found: install Debian's `postgresql` "
                           f"package (.ci/run does)")
    return found[-1]


def _as_server_user(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


def start(root: Path) -> tuple[subprocess.Popen, int]:
    data, sock = root / "data", root / "sock"
    sock.mkdir(parents=True)
    data.mkdir()
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
        for p in (data, sock):
            shutil.chown(p, "postgres")
    init = subprocess.run(_as_server_user([server_bin("initdb"), "-D", str(data), "-U",
                                           "postgres", "--auth=trust", "-E", "UTF8"]),
                          capture_output=True, text=True)
    if init.returncode:
        raise RuntimeError(f"initdb failed ({init.returncode}): {init.stderr}")
    port = free_port()
    proc = subprocess.Popen(
        _as_server_user([server_bin("postgres"), "-D", str(data), "-p", str(port),
                         "-k", str(sock), "-c", "listen_addresses=127.0.0.1",
                         "-c", "fsync=off", "-c", "max_connections=100"]),
        stdout=open(root / "server.log", "wb"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while subprocess.run([server_bin("pg_isready"), "-h", "127.0.0.1", "-p", str(port)],
                         capture_output=True).returncode:
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"postgres did not start: {(root / 'server.log').read_text()}")
        time.sleep(0.3)
    return proc, port


def create_database(port: int, name: str) -> str:
    subprocess.run([server_bin("createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres",
                    name], check=True, capture_output=True)
    return f"postgresql+psycopg://postgres@127.0.0.1:{port}/{name}"


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
