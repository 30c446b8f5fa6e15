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
        self._socket = socket.create_server((host, port), family=family, backlog=2048)
        self._socket.setblocking(False)
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
