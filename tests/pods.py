"""A rendered pod run as a local process, as close to the kubelet as this machine allows.

- The container's command + args, with $(VAR) expanded from its env, run under the pod's
  runAsUser/runAsGroup (setpriv), in its workingDir.
- Its image is a copy of the project (the image's /app), owned by the pod's user as the
  Dockerfile leaves it.
- Its volumes are bind mounts (what a kubelet does for a subPath), each from a directory of
  the test's "volume"; a ConfigMap mount is the ConfigMap's file; /dev/shm is the host's.
- Service names resolve to 127.0.0.1 (tests/pod_dns/sitecustomize.py): a Service's port
  equals its targetPort and the container's port, which tests check separately. A pod whose
  C code resolves names too (torch's rendezvous) gets its own /etc/hosts (`with_hosts`).
- Env: ConfigMap values as rendered (or as the test edits the cluster's ConfigMap), test
  values for secrets (`{"<secret>/<key>": value}`), HOME and USER as the image's user has them.
"""

from __future__ import annotations

import os
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

from command_parsers import expand

DNS_SHIM = Path(__file__).parent / "pod_dns"


def mount_allowed() -> bool:
    probe = Path("/proc/self/status").read_text()
    eff = int(next(line.split()[1] for line in probe.splitlines() if line.startswith("CapEff")), 16)
    return bool(eff & (1 << 21))  # CAP_SYS_ADMIN


def open_up(path: Path) -> None:
    """Let the pod's uid read `path` and pass through its parents (pytest's tmp root is 0700
    root; so is /root, where a pyenv interpreter under the venv may live)."""
    os.chmod(path, os.stat(path).st_mode | 0o055)
    for d in path.parents:
        if d != Path("/"):
            os.chmod(d, os.stat(d).st_mode | 0o011)


def pod_env(container: dict, configmaps: dict[str, dict], secrets: dict[str, str],
            home: Path, hosts: dict[str, str], extra: dict[str, str] | None = None) -> dict:
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "HOME": str(home),
           "USER": "recall", "LOGNAME": "recall", "PYTHONPATH": str(DNS_SHIM),
           "RECALL_TEST_HOSTS": ",".join(f"{k}={v}" for k, v in hosts.items()),
           "PYTHONUNBUFFERED": "1", "DVC_NO_ANALYTICS": "1", "VLLM_NO_USAGE_STATS": "1"}
    for ref in container.get("envFrom", []):
        if "configMapRef" in ref:
            env.update(configmaps[ref["configMapRef"]["name"]])
        elif "secretRef" in ref:  # "<secret>/<key>" entries; an absent optional one adds none
            name = ref["secretRef"]["name"]
            env.update({k.split("/", 1)[1]: v for k, v in secrets.items()
                        if k.startswith(f"{name}/")})
    for e in container.get("env", []):
        src = e.get("valueFrom", {})
        if "configMapKeyRef" in src:
            env[e["name"]] = configmaps[src["configMapKeyRef"]["name"]][src["configMapKeyRef"]["key"]]
        elif "secretKeyRef" in src:
            env[e["name"]] = secrets[f"{src['secretKeyRef']['name']}/{src['secretKeyRef']['key']}"]
        elif "fieldRef" in src:
            env[e["name"]] = "0"
        else:
            env[e["name"]] = e["value"]
    env.update(extra or {})
    return env


@contextmanager
def mounted(container: dict, pod: dict, app: Path, volumes: dict[str, Path],
            configmaps: dict[str, dict]):
    """Bind-mount the container's volumeMounts under the image copy `app` (for /app/...) or
    under `app`/../root (other absolute paths); yields the path map for its arguments."""
    by_name = {v["name"]: v for v in pod.get("volumes", [])}
    done, remap = [], {}
    try:
        for m in container.get("volumeMounts", []):
            vol = by_name[m["name"]]
            if "emptyDir" in vol:
                continue  # /dev/shm: the host's
            path = m["mountPath"]
            target = app / path[len("/app/"):] if path.startswith("/app/") else \
                app.parent / "root" / path.lstrip("/")
            if not path.startswith("/app/"):
                remap[path] = str(target)
            if "configMap" in vol:
                data = configmaps[vol["configMap"]["name"]]
                target.write_text(data[m["subPath"]])
                continue
            source = volumes[vol["persistentVolumeClaim"]["claimName"]] / m.get("subPath", "")
            source.mkdir(parents=True, exist_ok=True)
            if target.is_file() or target.is_symlink():
                target.unlink()
            target.mkdir(parents=True, exist_ok=True)
            subprocess.run(["mount", "--bind", str(source), str(target)], check=True)
            done.append(target)
        yield remap
    finally:
        for target in reversed(done):
            subprocess.run(["umount", "-l", str(target)], check=False)


def command(container: dict, pod: dict, env: dict, remap: dict[str, str]) -> list[str]:
    """The argv the kubelet would exec, under the pod's user."""
    argv = expand(container["command"] + container.get("args", []), env)
    for path, local in remap.items():
        argv = [a.replace(path, local) for a in argv]
    ctx = pod["securityContext"]
    return ["setpriv", f"--reuid={ctx['runAsUser']}", f"--regid={ctx['runAsGroup']}",
            "--clear-groups", *argv]


def with_hosts(argv: list[str], hosts_file: Path) -> list[str]:
    """`argv` with the pod's own /etc/hosts, as the kubelet mounts one into every container:
    `hosts_file` bound over /etc/hosts in a private mount namespace, so that names resolve
    in C (torch's TCPStore, gloo) as well as in Python. The host's file is untouched."""
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c",
            'mount --bind "$0" /etc/hosts && exec "$@"', str(hosts_file), *argv]


def kill_pod(proc) -> None:
    """SIGKILL a pod's every process, as a node failure or eviction does (torchrun starts its
    workers in sessions of their own, so a process group would miss them)."""
    import psutil

    try:
        pod = psutil.Process(proc.pid)
        tree = [pod, *pod.children(recursive=True)]
    except psutil.NoSuchProcess:  # it ended by itself meanwhile
        tree = []
    for p in tree:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    proc.wait(30)


def start(container: dict, pod: dict, env: dict, remap: dict, app: Path, log: Path,
          wait: bool = False, timeout: float = 1800, hosts_file: Path | None = None):
    """Run (wait=True: to the end; the CompletedProcess) or start (the Popen) the container;
    with `hosts_file`, under its own /etc/hosts (`with_hosts`)."""
    # The image's own code, as the image installs it from /app: not the checkout's.
    env = {**env, "PYTHONPATH": f"{env['PYTHONPATH']}:{app}"}
    argv = command(container, pod, env, remap)
    if hosts_file is not None:
        argv = with_hosts(argv, hosts_file)
    cwd = app if container.get("workingDir", "/app") == "/app" else container["workingDir"]
    with log.open("w") as out:
        if wait:
            return subprocess.run(argv, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                  timeout=timeout)
        return subprocess.Popen(argv, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)


@contextmanager
def cluster_dns(hosts: dict[str, str]):
    """In this process: Service names resolve as in the pods (str or idna bytes)."""
    import socket
    from unittest import mock

    real = socket.getaddrinfo

    def lookup(host, *args, **kwargs):
        name = host.decode() if isinstance(host, bytes) else host
        return real(hosts[name], *args, **kwargs) if name in hosts else real(host, *args, **kwargs)

    with mock.patch.object(socket, "getaddrinfo", lookup):
        yield
