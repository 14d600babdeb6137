"""Cluster DNS for a pod run as a local process: names in $RECALL_TEST_HOSTS (name=address,
comma-separated) resolve to their address, every other name as usual. Imported at start-up
by every Python process of the pod (PYTHONPATH), the training ranks and servers included."""

import os
import socket

_HOSTS = dict(pair.split("=", 1) for pair in os.environ.get("RECALL_TEST_HOSTS", "").split(",")
              if "=" in pair)
if _HOSTS:
    _real = socket.getaddrinfo

    def _getaddrinfo(host, *args, **kwargs):
        # anyio (httpx's async transport) passes the name idna-encoded, as bytes.
        name = host.decode() if isinstance(host, bytes) else host
        return _real(_HOSTS[name], *args, **kwargs) if name in _HOSTS else \
            _real(host, *args, **kwargs)

    socket.getaddrinfo = _getaddrinfo
