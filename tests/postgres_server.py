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
    return _serve(data, sock, port, root / "server.log"), port


def _serve(data: Path, sock: Path, port: int, log: Path) -> subprocess.Popen:
    """The server on `data`, listening on 127.0.0.1:`port`, once it accepts connections.
    setpriv execs, so the Popen is the server itself (runuser would stay its parent and not
    pass a stop signal on)."""
    user = ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups"] \
        if os.geteuid() == 0 else []
    proc = subprocess.Popen([*user, server_bin("postgres"), "-D", str(data), "-p", str(port),
                             "-k", str(sock), "-c", "listen_addresses=127.0.0.1",
                             "-c", "fsync=off", "-c", "max_connections=100"],
                            stdout=open(log, "ab"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while subprocess.run([server_bin("pg_isready"), "-h", "127.0.0.1", "-p", str(port)],
                         capture_output=True).returncode:
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"postgres did not start: {log.read_text()[-3000:]}")
        time.sleep(0.2)
    return proc


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


def start_like_image(data: Path, env: dict[str, str], init_sql: str, port: int,
                     log: Path) -> subprocess.Popen:
    """The rendered postgres pod: what the image's entrypoint (docker-entrypoint.sh) does,
    with this machine's server binaries under the `postgres` user (uid 999 in the image;
    initdb needs a user it can look up). On an empty PGDATA (`data`): initdb as
    $POSTGRES_USER with $POSTGRES_PASSWORD, the ConfigMap's init.sql run on a server that
    listens on its socket only, passwords for TCP clients. Then the server on `port`. A PGDATA
    with data only starts (a restarted pod); stop it as the pod does (`stop_like_image`)."""
    sock = data.parent / "sock"
    as_server = ["runuser", "-u", "postgres", "--"]
    if not (data / "PG_VERSION").exists():
        sock.mkdir(parents=True, exist_ok=True)
        data.mkdir(mode=0o700, parents=True, exist_ok=True)
        pwfile, script = data.parent / "pwfile", data.parent / "init.sql"
        pwfile.write_text(env["POSTGRES_PASSWORD"] + "\n")
        script.write_text(init_sql)
        for p in (data.parent, data, sock, pwfile, script):
            shutil.chown(p, "postgres")
        user = env["POSTGRES_USER"]
        steps = [[server_bin("initdb"), "-D", str(data), "-U", user, f"--pwfile={pwfile}",
                  "-E", "UTF8", "--auth-local=trust", "--auth-host=scram-sha-256"],
                 # -l: the server's output to a file, not to the pipes run() reads to EOF.
                 [server_bin("pg_ctl"), "-D", str(data), "-w", "-l", str(data.parent / "init.log"),
                  "-o",
                  f"-c listen_addresses='' -k {sock}", "start"],
                 [server_bin("psql"), "-v", "ON_ERROR_STOP=1", "-h", str(sock), "-U", user,
                  "-d", "postgres", "-f", str(script)],
                 [server_bin("pg_ctl"), "-D", str(data), "-w", "-m", "fast", "stop"]]
        for cmd in steps:
            done = subprocess.run(as_server + cmd, capture_output=True, text=True)
            if done.returncode:
                raise RuntimeError(f"{cmd[0]} failed ({done.returncode}): {done.stderr}")
        with (data / "pg_hba.conf").open("a") as hba:
            hba.write("host all all all scram-sha-256\n")
    return _serve(data, sock, port, log)


def stop_like_image(proc: subprocess.Popen) -> None:
    """Stop the pod's server as Kubernetes does with the image's STOPSIGNAL (SIGINT: a fast
    shutdown, which ends client sessions instead of waiting for them)."""
    import signal

    proc.send_signal(signal.SIGINT)
    proc.wait(60)
