"""Health probe for container health checks: ``python -m facesearch.server.probe``.

Calls ``grpc.health.v1.Health/Check`` on a facesearch-server and exits 0 when it answers
SERVING, 1 otherwise (NOT_SERVING while the model and gallery load or while draining,
nothing listening, no answer in time, a TLS problem), printing one line that says why.
Docker reserves exit code 2 for health checks, so usage errors exit 1 as well.

It imports only grpc, not the settings classes or the model stack, so it starts in well
under a second and can run every few seconds. The defaults come from the server's own
variables, so a probe run inside the server's container needs no arguments:

- FACESEARCH_ADDRESS: where to connect; a wildcard host (0.0.0.0, [::]) becomes 127.0.0.1.
- FACESEARCH_TLS_CERT: when set, connect with TLS and trust that certificate (right for a
  self-signed one; pass --ca for a CA-issued one), checking it against its own DNS name.
- FACESEARCH_AUTH_TOKEN: sent as ``authorization: Bearer <token>`` (health itself needs none).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

DEFAULT_PORT = 50051
DEFAULT_ADDRESS = f"127.0.0.1:{DEFAULT_PORT}"  # ServerConfig.address; tests/unit/test_deploy.py keeps them equal
DEFAULT_TIMEOUT_S = 3.0
WILDCARD_HOSTS = {"", "*", "0.0.0.0", "::"}
SERVING = health_pb2.HealthCheckResponse.SERVING


def local_target(address: str) -> str:
    """The target that reaches a server listening on `address`, from the same host.

    A wildcard host becomes 127.0.0.1 and a missing port becomes 50051:
    "0.0.0.0:50051" -> "127.0.0.1:50051", "[::]:7000" -> "127.0.0.1:7000", "example" -> "example:50051".
    """
    address = address.strip()
    if address.startswith("unix:"):
        return address
    if address.startswith("["):                  # [v6]:port
        host, _, rest = address[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif address.count(":") > 1:                 # a bare IPv6 address, no port
        host, port = address, ""
    else:
        host, _, port = address.partition(":")
    if host in WILDCARD_HOSTS:
        host = "127.0.0.1"
    elif ":" in host:
        host = f"[{host}]"
    return f"{host}:{port or DEFAULT_PORT}"


def check_health(target: str, service: str = "", timeout: float = DEFAULT_TIMEOUT_S, *,
                 credentials: grpc.ChannelCredentials | None = None, server_name: str | None = None,
                 token: str | None = None) -> int:
    """grpc.health.v1 Check of `service` ("" = the whole server) at `target`; returns the status
    (a health_pb2.HealthCheckResponse.ServingStatus).

    With `credentials` the channel uses TLS, and `server_name` (if given) is the name the
    certificate is checked against instead of the target's host. Raises grpc.RpcError when the
    call fails: UNAVAILABLE (nothing listening, TLS failure), DEADLINE_EXCEEDED, NOT_FOUND (an
    unknown service). It does not wait for a server that is not listening yet.
    """
    options = [("grpc.ssl_target_name_override", server_name)] if credentials is not None and server_name else []
    channel = (grpc.secure_channel(target, credentials, options) if credentials is not None
               else grpc.insecure_channel(target, options))
    metadata = (("authorization", f"Bearer {token}"),) if token else None
    with channel:
        stub = health_pb2_grpc.HealthStub(channel)
        return stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout, metadata=metadata).status


def certificate_name(pem: Path) -> str | None:
    """The first DNS name (else the common name) of the first certificate in a PEM file, or None."""
    try:
        import ssl

        info = ssl._ssl._test_decode_cert(str(pem))  # CPython's decoder; no third-party package needed
    except Exception:  # any failure just means "no name known"
        return None
    for kind, value in info.get("subjectAltName", ()):
        if kind == "DNS":
            return value
    for rdn in info.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return value
    return None


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse exits 2, which Docker reserves for health checks
        self.print_usage(sys.stderr)
        self.exit(1, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    address = os.environ.get("FACESEARCH_ADDRESS") or DEFAULT_ADDRESS
    tls_cert = os.environ.get("FACESEARCH_TLS_CERT", "")
    parser = _Parser(
        prog="python -m facesearch.server.probe",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Ask a facesearch-server whether it is SERVING (grpc.health.v1 Check).\n"
                    "Exit 0 when it is, 1 otherwise, with a one-line reason. Meant for Docker HEALTHCHECK\n"
                    "and compose healthcheck: the defaults come from the server's FACESEARCH_* variables,\n"
                    "so inside the server's container no flags are needed.",
        epilog="examples:\n"
               "  python -m facesearch.server.probe\n"
               "  python -m facesearch.server.probe --address 10.0.0.5:50051 --timeout 1\n"
               "  python -m facesearch.server.probe --service facesearch.v1.FaceSearch\n"
               "  python -m facesearch.server.probe --tls --ca ca.pem --server-name facesearch.example.org")
    parser.add_argument("--address", default=local_target(address), metavar="HOST:PORT",
                        help="server to ask [from FACESEARCH_ADDRESS, a wildcard host becoming "
                             "127.0.0.1; default %(default)s]")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, metavar="S",
                        help="seconds to wait for the answer [%(default)s]")
    parser.add_argument("--service", default="", metavar="NAME",
                        help="service to ask about, e.g. facesearch.v1.FaceSearch [default: the whole server]")
    parser.add_argument("--tls", action=argparse.BooleanOptionalAction, default=None,
                        help="connect with TLS [default: on when --ca or FACESEARCH_TLS_CERT is set]")
    parser.add_argument("--ca", metavar="FILE", default=tls_cert or None,
                        help="PEM certificates to trust [default: FACESEARCH_TLS_CERT, right for a "
                             "self-signed server certificate; without either, the system roots]")
    parser.add_argument("--server-name", metavar="NAME",
                        help="name the server certificate must carry [default: the first DNS name of --ca, "
                             "else the host of --address]")
    parser.add_argument("--token", default=os.environ.get("FACESEARCH_AUTH_TOKEN", ""), metavar="TOKEN",
                        help="bearer token to send; health needs none [FACESEARCH_AUTH_TOKEN]")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    target = args.address
    what = f"{target} service {args.service!r}" if args.service else target
    credentials = server_name = None
    use_tls = args.tls if args.tls is not None else bool(args.ca)
    if use_tls:
        try:
            roots = Path(args.ca).read_bytes() if args.ca else None
        except OSError as exc:
            print(f"UNHEALTHY {what}: cannot read the CA file: {exc}", file=sys.stderr)
            return 1
        credentials = grpc.ssl_channel_credentials(root_certificates=roots)
        server_name = args.server_name or (certificate_name(Path(args.ca)) if args.ca else None)
    try:
        status = check_health(target, args.service, args.timeout, credentials=credentials,
                              server_name=server_name, token=args.token or None)
    except grpc.RpcError as exc:
        code = exc.code()
        detail = (exc.details() or "").splitlines()[0] if exc.details() else ""
        if code == grpc.StatusCode.DEADLINE_EXCEEDED:
            reason = f"no answer within {args.timeout:g} s"
        elif code == grpc.StatusCode.NOT_FOUND:
            reason = f"the server does not know the service {args.service!r}"
        elif code == grpc.StatusCode.UNAVAILABLE:
            reason = f"cannot reach the server ({detail})" if detail else "cannot reach the server"
        else:
            reason = f"{code.name}: {detail}" if detail else code.name
        print(f"UNHEALTHY {what}: {reason}", file=sys.stderr)
        return 1
    name = health_pb2.HealthCheckResponse.ServingStatus.Name(status)
    if status == SERVING:
        print(f"SERVING {what}")
        return 0
    hint = " (loading the model and gallery, or draining)" if name == "NOT_SERVING" else ""
    print(f"UNHEALTHY {what}: {name}{hint}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
