"""uvicorn inside the server's own event loop, beside gRPC: bind, serve, drain and stop on demand
(the process's signal handlers stay the server's, not uvicorn's)."""

from __future__ import annotations

import asyncio
import socket

import uvicorn


def split_address(address: str) -> tuple[str, int]:
    """host:port, [v6]:port -> (host, port)."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise OSError(f"{address!r} is not host:port")
    return host.strip("[]"), int(port)


def listener(host: str, port: int, family: int) -> socket.socket:
    """A listening TCP socket made with IPPROTO_TCP: asyncio turns Nagle off (TCP_NODELAY) only on
    connections whose socket says TCP, and with Nagle on every small answer waits ~40 ms for the
    client's delayed ACK."""
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((host, port))
        sock.listen(2048)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


class HttpServer:
    def __init__(self, app, address: str, *, tls_cert: str = "", tls_key: str = "", grace_s: float = 10.0):
        self.address = address
        self.config = uvicorn.Config(app, ssl_certfile=tls_cert or None, ssl_keyfile=tls_key or None,
                                     log_config=None, access_log=False, lifespan="off", server_header=False,
                                     timeout_graceful_shutdown=grace_s, proxy_headers=False)
        self.server: uvicorn.Server | None = None
        self._socket: socket.socket | None = None
        self._ticks: asyncio.Task | None = None

    async def start(self) -> str:
        """Bind and serve; returns host:port as bound (port 0 picks one). Raises OSError."""
        host, port = split_address(self.address)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._socket = listener(host, port, family)
        self.config.load()
        self.server = uvicorn.Server(self.config)
        self.server.lifespan = self.config.lifespan_class(self.config)
        await self.server.startup(sockets=[self._socket])
        self._ticks = asyncio.ensure_future(self.server.main_loop())   # date header; exits on should_exit
        bound = self._socket.getsockname()[1]
        return f"[{host}]:{bound}" if family == socket.AF_INET6 else f"{host}:{bound}"

    async def stop(self) -> None:
        """Stop accepting, let requests in flight finish (up to grace_s), close."""
        if self.server is None:
            return
        self.server.should_exit = True
        if self._ticks is not None:
            await self._ticks
        await self.server.shutdown(sockets=[self._socket])
        self.server = None
