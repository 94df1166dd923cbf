"""Starting the web UI: the optional dependencies, the listening socket and uvicorn.

The socket is bound here, before uvicorn starts, so that a port in use is one clear line and port
0 (any free port) still prints the real address.
"""
from __future__ import annotations

import importlib.util
import ipaddress
import socket
import threading
from typing import Any

from i2i.errors import UsageError

__all__ = ["ServerThread", "bind", "is_loopback", "page_url", "require_dependencies", "serve_forever"]

#: The [serve] extra: module name -> package name.
DEPENDENCIES = {"starlette": "starlette", "uvicorn": "uvicorn", "multipart": "python-multipart"}


def require_dependencies() -> None:
    """Raise :class:`UsageError` naming the extra when a package of the web UI is not installed."""
    missing = [package for module, package in DEPENDENCIES.items() if importlib.util.find_spec(module) is None]
    if missing:
        raise UsageError(f"i2i serve needs {', '.join(missing)}: pip install 'i2i-toolkit[serve]'")


def is_loopback(host: str) -> bool:
    """Whether ``host`` is reachable only from this machine (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (port 0: any free port).

    Raises:
        UsageError: the address is not usable here (port in use, unknown host, no permission).
    """
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
    except (OSError, UnicodeError) as error:
        raise UsageError(f"--host {host!r} is not an address of this machine ({error}); try 127.0.0.1") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as error:
        sock.close()
        hint = "choose another --port (or 0 for any free one)" if port else "check --host"
        raise UsageError(f"cannot listen on {host}:{port} ({error.strerror or error}); {hint}") from None
    sock.set_inheritable(True)
    return sock


def page_url(sock: socket.socket) -> str:
    """The address to open in a browser for a socket from :func:`bind`."""
    host, port = sock.getsockname()[:2]
    if host in ("0.0.0.0", "::"):
        host = "127.0.0.1" if host == "0.0.0.0" else "::1"
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/"


def _server(app: Any, log_level: str) -> Any:
    import uvicorn

    config = uvicorn.Config(app, log_level=log_level, access_log=False, lifespan="on", timeout_graceful_shutdown=2)
    return uvicorn.Server(config)


def serve_forever(app: Any, sock: socket.socket, *, log_level: str = "warning") -> None:
    """Serve ``app`` on ``sock`` until Ctrl+C."""
    _server(app, log_level).run(sockets=[sock])


class ServerThread:
    """``app`` served on ``sock`` from a background thread, for tests and scripts::

        with ServerThread(app, bind("127.0.0.1", 0)) as url:
            ...  # requests to url
    """

    def __init__(self, app: Any, sock: socket.socket, *, log_level: str = "warning") -> None:
        self.sock = sock
        self.server = _server(app, log_level)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]}, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        ready = threading.Event()
        while not self.server.started and self.thread.is_alive():
            ready.wait(0.02)
        if not self.server.started:
            raise RuntimeError("the web UI's server did not start; see its log above")
        return page_url(self.sock)

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()
