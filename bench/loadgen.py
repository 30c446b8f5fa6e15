"""A small ghz-compatible load generator for a facesearch server on this machine.

    .venv/bin/python bench/loadgen.py --config bench/ghz/identify_cropped.json [flags] [HOST:PORT]

It reads ghz's configuration files (bench/ghz/*.json run unchanged with `ghz --config`) and
supports their common subset: call, host, data / data-file / binary-file, metadata /
metadata-file, concurrency, total, duration, max-duration, duration-stop, rps, connections,
timeout, connect-timeout, skipFirst, name, insecure, cacert/cert/key/cname, enable-compression.
Flags override the file's keys (and -z given as a flag drops the file's max-duration).
`proto`, `import-paths` and `protoset` are accepted and not
needed: requests are built with the generated facesearch.v1 stubs (json_format.ParseDict, so
bytes are base64 and enums are names, as in ghz). ghz's template actions in data and
metadata work for {{.RequestNumber}}, {{.WorkerID}}, {{.UUID}}, {{.Timestamp*}}, the call's
names, {{newUUID}}, {{randomString N}} and {{randomInt MIN MAX}}.

Each of `connections` worker processes has its own grpc.aio channel and runs its share of
`concurrency` callers; request numbers come from one shared counter and --rps paces them
globally. Every run is bounded in count and in time:
  -n N                 N requests (default 200), stopped at --max-duration (default 60s);
  -x D                 ghz's max-duration: N requests, stopped at D;
  -z D                 ghz's duration: as many requests as fit in D (N is ignored).
Calls in flight at the time limit are cancelled and reported as Canceled (duration-stop
close, ghz's default), left out (ignore), or awaited up to --timeout (wait).

Only a server on this machine can be driven: the host must be 127.0.0.1, localhost or
[::1] (use ghz itself for anything else). The report is ghz's: a summary on stdout, and
with -O json|pretty (or -o FILE.json) ghz's JSON report, durations in nanoseconds.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import multiprocessing as mp
import os
import queue as queue_mod
import random
import re
import string
import sys
import time
import uuid
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import grpc
from google.protobuf import json_format, message_factory

from facesearch.v1 import facesearch_pb2 as pb
from facesearch.v1 import facesearch_pb2_grpc as pb_grpc

REPO = Path(__file__).resolve().parent.parent
SERVICE = pb.DESCRIPTOR.services_by_name["FaceSearch"]
DEFAULT_TOTAL = 200
DEFAULT_CONCURRENCY = 50
DEFAULT_MAX_DURATION_S = 60.0
DEFAULT_TIMEOUT_S = 20.0
DEFAULT_CONNECT_TIMEOUT_S = 10.0
DURATION_CAP_COUNT = 10_000_000  # -z: ghz ignores -n; this only keeps memory bounded
MAX_MESSAGE = 16 << 20
PERCENTILES = (10, 25, 50, 75, 90, 95, 99)

# ghz's configuration keys (runner.Config), by what loadgen does with them.
SUPPORTED = {"call", "host", "insecure", "total", "concurrency", "connections", "rps", "qps", "duration",
             "max-duration", "duration-stop", "timeout", "connect-timeout", "data", "data-file", "binary-file",
             "metadata", "metadata-file", "skipFirst", "name", "tags", "output", "format", "cacert", "cert", "key",
             "cname", "enable-compression"}
NOT_NEEDED = {"proto", "protoset", "import-paths", "reflect-metadata", "cpus", "keepalive", "debug", "authority"}
CONSTANT_ONLY = {"load-schedule": "const", "concurrency-schedule": "const"}
SCHEDULE_KEYS = {"load-start", "load-end", "load-step", "load-step-duration", "load-max-duration",
                 "concurrency-start", "concurrency-end", "concurrency-step", "concurrency-step-duration",
                 "concurrency-max-duration", "stream-interval", "lb-strategy"}
UNSUPPORTED = {"async", "skipTLS"}
ALL_KEYS = SUPPORTED | NOT_NEEDED | set(CONSTANT_ONLY) | SCHEDULE_KEYS | UNSUPPORTED

# grpc.StatusCode -> the name Go's codes.Code prints, as in ghz's statusCodeDistribution.
GO_CODE = {"OK": "OK", "CANCELLED": "Canceled", "UNKNOWN": "Unknown", "INVALID_ARGUMENT": "InvalidArgument",
           "DEADLINE_EXCEEDED": "DeadlineExceeded", "NOT_FOUND": "NotFound", "ALREADY_EXISTS": "AlreadyExists",
           "PERMISSION_DENIED": "PermissionDenied", "RESOURCE_EXHAUSTED": "ResourceExhausted",
           "FAILED_PRECONDITION": "FailedPrecondition", "ABORTED": "Aborted", "OUT_OF_RANGE": "OutOfRange",
           "UNIMPLEMENTED": "Unimplemented", "INTERNAL": "Internal", "UNAVAILABLE": "Unavailable",
           "DATA_LOSS": "DataLoss", "UNAUTHENTICATED": "Unauthenticated"}


class LoadgenError(Exception):
    """A bad configuration or flag, or a server that cannot be reached: printed, exit status 2."""


# ---------------------------------------------------------------------------------------------
# configuration


def parse_duration(value, what: str) -> float:
    """Go duration ("20s", "1m30s", "250ms") or a number of seconds -> seconds."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and re.fullmatch(r"\s*\d+(\.\d*)?\s*", value):
        seconds = float(value)
    elif isinstance(value, str) and value.strip():
        units = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
        parts = re.findall(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)", value.strip())
        if not parts or "".join(n + u for n, u in parts) != value.strip():
            raise LoadgenError(f"{what}: {value!r} is not a duration (e.g. 10s, 1m30s, 500ms)")
        seconds = sum(float(n) * units[u] for n, u in parts)
    else:
        raise LoadgenError(f"{what}: {value!r} is not a duration (e.g. 10s, 1m30s, 500ms)")
    if seconds < 0:
        raise LoadgenError(f"{what}: {value!r} is negative")
    return seconds


def check_host(host: str) -> str:
    """HOST:PORT on the loopback interface, or LoadgenError. Returns the gRPC target."""
    h = (host or "").strip()
    if not h:
        raise LoadgenError("no host: give HOST:PORT (e.g. 127.0.0.1:50051) or 'host' in the config")
    m = re.fullmatch(r"\[([^\]]+)\]:(\d+)", h) or re.fullmatch(r"([^:\[\]/]+):(\d+)", h)
    if not m:
        raise LoadgenError(f"host {host!r} must be HOST:PORT, e.g. 127.0.0.1:50051 or [::1]:50051")
    name, port = m.group(1), int(m.group(2))
    loopback = name.lower() == "localhost"
    if not loopback:
        try:
            loopback = ipaddress.ip_address(name).is_loopback
        except ValueError:
            loopback = False
    if not loopback:
        raise LoadgenError(f"refusing host {host!r}: loadgen only drives a server on this machine "
                           "(127.0.0.1, localhost or [::1]); use ghz for other hosts")
    if not 0 < port < 65536:
        raise LoadgenError(f"host {host!r}: port {port} is out of range")
    return h


def find_method(call: str):
    """'facesearch.v1.FaceSearch.Identify' or '.../Identify' -> the method descriptor."""
    if not call:
        raise LoadgenError("no call: give --call or 'call' in the config, e.g. facesearch.v1.FaceSearch.Identify")
    service, sep, name = call.strip().replace("/", ".").rpartition(".")
    unary = [m.name for m in SERVICE.methods if not (m.client_streaming or m.server_streaming)]
    if not sep or service != SERVICE.full_name or name not in SERVICE.methods_by_name:
        raise LoadgenError(f"unknown call {call!r}; loadgen knows {SERVICE.full_name}.<method> for the unary "
                           f"methods: {', '.join(unary)}")
    method = SERVICE.methods_by_name[name]
    if method.client_streaming or method.server_streaming:
        raise LoadgenError(f"{call} is a streaming call; loadgen drives unary calls only ({', '.join(unary)}); "
                           "use ghz for streams")
    return method


def request_class(method):
    return message_factory.GetMessageClass(method.input_type)


def resolve_path(path: str, config_dir: Path | None) -> Path:
    """Like ghz: relative to the current directory; then the config's folder and the repository root."""
    p = Path(path).expanduser()
    candidates = [p] if p.is_absolute() else [p, *([config_dir / p] if config_dir else []), REPO / p]
    for c in candidates:
        if c.is_file():
            return c
    raise LoadgenError(f"file not found: {path} (relative paths are read from the current directory, as ghz does)")


def load_config(path: str | Path) -> dict:
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as e:
        raise LoadgenError(f"cannot read config {path}: {e.strerror or e}") from None
    try:
        config = json.loads(text)
    except json.JSONDecodeError as e:
        raise LoadgenError(f"config {path} is not valid JSON: {e}") from None
    if not isinstance(config, dict):
        raise LoadgenError(f"config {path} must be a JSON object of ghz options")
    unknown = sorted(set(config) - ALL_KEYS)
    if unknown:
        raise LoadgenError(f"config {path}: unknown key(s) {', '.join(unknown)} (not ghz options)")
    return config


# ghz's template actions (Go text/template over the call data), the subset loadgen renders.
_FIELD = re.compile(r"\{\{\s*\.(\w+)\s*\}\}")
_FUNC = re.compile(r"\{\{\s*(newUUID|randomString\s+(\d+)|randomInt\s+(-?\d+)\s+(-?\d+))\s*\}\}")


def template_context(method, request_number: int, worker_id: str) -> dict:
    now = time.time_ns()
    return {"RequestNumber": request_number, "WorkerID": worker_id, "UUID": str(uuid.uuid4()),
            "FullyQualifiedName": method.full_name, "MethodName": method.name,
            "ServiceName": method.containing_service.name, "InputName": method.input_type.name,
            "OutputName": method.output_type.name, "IsClientStreaming": "false", "IsServerStreaming": "false",
            "Timestamp": datetime.fromtimestamp(now / 1e9, timezone.utc).astimezone().isoformat(timespec="seconds"),
            "TimestampUnix": now // 10**9, "TimestampUnixMilli": now // 10**6, "TimestampUnixNano": now}


def render(value, ctx: dict):
    """Fill template actions in every string of a JSON value."""
    if isinstance(value, str):
        if "{{" not in value:
            return value

        def field(m):
            if m.group(1) not in ctx:
                raise LoadgenError(f"unknown template field {{{{.{m.group(1)}}}}}; known: "
                                   + ", ".join(f"{{{{.{k}}}}}" for k in ctx))
            return str(ctx[m.group(1)])

        def func(m):
            if m.group(1) == "newUUID":
                return str(uuid.uuid4())
            if m.group(2):
                return "".join(random.choices(string.ascii_letters + string.digits, k=int(m.group(2))))
            return str(random.randint(int(m.group(3)), int(m.group(4))))

        out = _FUNC.sub(func, _FIELD.sub(field, value))
        if "{{" in out:
            raise LoadgenError(f"unsupported template action in {value[:80]!r}")
        return out
    if isinstance(value, list):
        return [render(v, ctx) for v in value]
    if isinstance(value, dict):
        return {k: render(v, ctx) for k, v in value.items()}
    return value


def has_actions(value) -> bool:
    return "{{" in json.dumps(value)


def build_request(method, data: dict, request_number: int = 0, worker_id: str = "g0c0"):
    """One request message from ghz-style JSON data (template actions filled in)."""
    if has_actions(data):
        data = render(data, template_context(method, request_number, worker_id))
    try:
        return json_format.ParseDict(data, request_class(method)())
    except json_format.ParseError as e:
        raise LoadgenError(f"data does not fit {method.input_type.full_name}: {e}") from None


def _parse_metadata(text) -> dict:
    if isinstance(text, dict):
        return {str(k): str(v) for k, v in text.items()}
    s = str(text).strip()
    if s.startswith("{"):
        try:
            value = json.loads(s)
        except json.JSONDecodeError as e:
            raise LoadgenError(f"metadata {s[:60]!r} is not a JSON object: {e}") from None
        if not isinstance(value, dict):
            raise LoadgenError("metadata must be a JSON object of strings")
        return {str(k): str(v) for k, v in value.items()}
    key, sep, val = s.partition(":")
    if not sep or not key.strip():
        raise LoadgenError(f"metadata {s!r}: use JSON ('{{\"authorization\": \"Bearer T\"}}') or 'key: value'")
    return {key.strip(): val.strip()}


def plan(args: argparse.Namespace) -> dict:
    """Config file overlaid with flags -> everything a run needs, checked."""
    config = load_config(args.config) if args.config else {}
    config_dir = Path(args.config).resolve().parent if args.config else None
    flags = {"call": args.call, "host": args.host or args.host_arg, "total": args.total,
             "concurrency": args.concurrency, "connections": args.connections, "rps": args.rps,
             "duration": args.duration, "max-duration": args.max_duration, "duration-stop": args.duration_stop,
             "timeout": args.timeout, "connect-timeout": args.connect_timeout, "data-file": args.data_file,
             "binary-file": args.binary_file, "metadata-file": args.metadata_file, "skipFirst": args.skip_first,
             "name": args.name, "output": args.output, "format": args.format, "cacert": args.cacert,
             "cname": args.cname, "cert": args.cert, "key": args.key}
    if args.insecure:
        flags["insecure"] = True
    if args.enable_compression:
        flags["enable-compression"] = True
    if args.data is not None:
        try:
            flags["data"] = "@" if args.data == "@" else json.loads(args.data)
        except json.JSONDecodeError as e:
            raise LoadgenError(f"-d/--data is not JSON: {e}") from None
        config.pop("data-file", None)
        config.pop("binary-file", None)
    if args.data_file or args.binary_file:
        config.pop("data", None)
        config.pop("binary-file" if args.data_file else "data-file", None)
    if args.duration and not args.max_duration:  # -z on the command line replaces the file's bounds
        config.pop("max-duration", None)
    if args.metadata:
        md: dict = {}
        for m in args.metadata:
            md.update(_parse_metadata(m))
        flags["metadata"] = md
    config.update({k: v for k, v in flags.items() if v is not None})
    if "qps" in config and "rps" not in config:
        config["rps"] = config["qps"]

    for key, allowed in CONSTANT_ONLY.items():
        if config.get(key, allowed) != allowed:
            raise LoadgenError(f"{key} {config[key]!r} is not supported by loadgen (only {allowed!r}); use ghz")
    for key in sorted(SCHEDULE_KEYS & set(config)):
        if config[key] not in (0, "0", "", None, "0s"):
            raise LoadgenError(f"{key} is not supported by loadgen; use ghz")
    for key in sorted(UNSUPPORTED & set(config)):
        if config[key]:
            raise LoadgenError(f"{key} is not supported by loadgen; use ghz")

    method = find_method(config.get("call", ""))
    target = check_host(config.get("host", ""))

    def count(key, default, minimum):
        value = config.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise LoadgenError(f"{key} must be an integer >= {minimum}, got {value!r}")
        return value

    concurrency = count("concurrency", DEFAULT_CONCURRENCY, 1)
    connections = count("connections", 1, 1)
    if connections > concurrency:
        raise LoadgenError(f"connections ({connections}) cannot be greater than concurrency ({concurrency})")
    rps = count("rps", 0, 0)
    skip_first = count("skipFirst", 0, 0)
    duration = parse_duration(config.get("duration", 0), "duration")
    max_duration = parse_duration(config.get("max-duration", 0), "max-duration")
    if max_duration > 0:  # ghz: -x wins over -z, and keeps -n
        total, limit = count("total", DEFAULT_TOTAL, 1), max_duration
    elif duration > 0:
        total, limit = DURATION_CAP_COUNT, duration
    else:
        total, limit = count("total", DEFAULT_TOTAL, 1), DEFAULT_MAX_DURATION_S
    if skip_first >= total:
        raise LoadgenError(f"skipFirst ({skip_first}) must be smaller than total ({total})")
    timeout = parse_duration(config.get("timeout", DEFAULT_TIMEOUT_S), "timeout") or None
    connect_timeout = parse_duration(config.get("connect-timeout", DEFAULT_CONNECT_TIMEOUT_S), "connect-timeout")
    stop = str(config.get("duration-stop", "close")).lower()
    if stop not in ("close", "ignore", "wait"):
        raise LoadgenError(f"duration-stop must be close, ignore or wait, got {stop!r}")

    binary = None
    if config.get("binary-file"):
        binary = resolve_path(config["binary-file"], config_dir).read_bytes()
        try:
            request_class(method).FromString(binary)
        except Exception as e:  # noqa: BLE001 - protobuf raises DecodeError and others
            raise LoadgenError(f"binary-file is not a serialized {method.input_type.full_name}: {e}") from None
        data = None
    else:
        if config.get("data-file"):
            source = resolve_path(config["data-file"], config_dir)
            try:
                data = json.loads(source.read_text())
            except json.JSONDecodeError as e:
                raise LoadgenError(f"data-file {source} is not valid JSON: {e}") from None
        elif config.get("data") == "@":
            data = json.load(sys.stdin)
        else:
            data = config.get("data", {})
        if isinstance(data, dict):
            data = [data]
        if not isinstance(data, list) or not data or not all(isinstance(d, dict) for d in data):
            raise LoadgenError("data must be a JSON object, or a non-empty array of objects (used round-robin)")
        for i, d in enumerate(data):
            build_request(method, d, i)  # every message must build before anything is sent

    metadata = dict(config.get("metadata") or {})
    if config.get("metadata-file"):
        metadata = {**_parse_metadata(resolve_path(config["metadata-file"], config_dir).read_text()), **metadata}
    metadata = {k.lower(): str(v) for k, v in metadata.items()}

    tls = None
    if config.get("cacert") or config.get("cert"):
        tls = {k: resolve_path(config[k], config_dir).read_bytes() if config.get(k) else None
               for k in ("cacert", "cert", "key")}
        tls["cname"] = config.get("cname") or ""
    fmt = config.get("format") or ("pretty" if str(config.get("output", "")).endswith(".json") else "summary")
    if fmt not in ("summary", "json", "pretty"):
        raise LoadgenError(f"format {fmt!r}: loadgen writes summary, json or pretty")
    return {"call": method.full_name, "method": method.name, "target": target, "concurrency": concurrency,
            "connections": connections, "total": total, "limit_s": limit, "rps": rps, "timeout_s": timeout,
            "connect_timeout_s": connect_timeout, "duration_stop": stop, "skip_first": skip_first,
            "data": data, "binary": binary, "metadata": metadata, "tls": tls,
            "compression": bool(config.get("enable-compression")), "name": config.get("name", ""),
            "tags": config.get("tags") or {}, "output": config.get("output", ""), "format": fmt,
            "data_file": config.get("data-file") or config.get("binary-file") or "",
            "n_given": max_duration > 0 or duration <= 0, "duration_s": duration, "max_duration_s": max_duration}


# ---------------------------------------------------------------------------------------------
# worker processes


def _channel(job: dict):
    options = [("grpc.max_send_message_length", MAX_MESSAGE), ("grpc.max_receive_message_length", MAX_MESSAGE),
               ("grpc.use_local_subchannel_pool", 1)]  # each process its own connection
    compression = grpc.Compression.Gzip if job["compression"] else None
    tls = job["tls"]
    if tls:
        if tls["cname"]:
            options.append(("grpc.ssl_target_name_override", tls["cname"]))
        creds = grpc.ssl_channel_credentials(root_certificates=tls["cacert"], private_key=tls["key"],
                                             certificate_chain=tls["cert"])
        return grpc.aio.secure_channel(job["target"], creds, options, compression)
    return grpc.aio.insecure_channel(job["target"], options, compression)


async def _drive(job: dict, counter, start_at, go, results_q) -> None:
    method = SERVICE.methods_by_name[job["method"]]
    request_type = request_class(method)
    channel = _channel(job)
    try:
        try:
            await asyncio.wait_for(channel.channel_ready(), job["connect_timeout_s"])
        except asyncio.TimeoutError:
            results_q.put({"conn": job["conn"], "error": f"cannot connect to {job['target']} within "
                           f"{job['connect_timeout_s']:g}s: is the server running?"})
            return
        call = getattr(pb_grpc.FaceSearchStub(channel), job["method"])
        if job["binary"] is not None:
            fixed, data = [request_type.FromString(job["binary"])], None
        else:
            data = job["data"]
            fixed = None if any(has_actions(d) for d in data) else [build_request(method, d) for d in data]
        md_templated = has_actions(job["metadata"])
        results_q.put({"conn": job["conn"], "ready": True})
        loop = asyncio.get_running_loop()
        if not await loop.run_in_executor(None, go.wait, 300):
            return
        t0 = start_at.value
        deadline = t0 + job["limit_s"]
        total, rps, timeout = job["total"], job["rps"], job["timeout_s"]
        await asyncio.sleep(max(0.0, t0 - time.monotonic()))
        results: list = []
        inflight: dict = {}

        async def caller(worker_id: str) -> None:
            while True:
                with counter.get_lock():
                    k = counter.value
                    if k >= total:
                        return
                    counter.value = k + 1
                if rps:
                    await asyncio.sleep(max(0.0, t0 + k / rps - time.monotonic()))
                if time.monotonic() >= deadline:
                    return
                if fixed is not None:
                    request = fixed[k % len(fixed)]
                else:
                    request = build_request(method, data[k % len(data)], k, worker_id)
                md = job["metadata"]
                if md_templated:
                    md = render(md, template_context(method, k, worker_id))
                stamp, t = time.time_ns(), time.perf_counter_ns()
                inflight[worker_id] = (stamp, t)
                try:
                    await call(request, timeout=timeout, metadata=tuple(md.items()))
                    status, error = "OK", ""
                except grpc.aio.AioRpcError as e:
                    status = GO_CODE.get(e.code().name, e.code().name)
                    error = f"rpc error: code = {status} desc = {e.details()}"
                results.append((stamp, time.perf_counter_ns() - t, status, error))
                del inflight[worker_id]

        share = job["concurrency"]
        tasks = [asyncio.create_task(caller(f"g{job['conn']}c{j}")) for j in range(share)]
        _, pending = await asyncio.wait(tasks, timeout=max(0.0, deadline - time.monotonic()))
        reason = "normal"
        if pending:
            reason = "timeout"
            if job["duration_stop"] == "wait":
                _, pending = await asyncio.wait(pending, timeout=timeout)
            now = time.perf_counter_ns()
            cut = list(inflight.values())
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            if job["duration_stop"] != "ignore":
                results += [(stamp, now - t, "Canceled", "rpc error: code = Canceled desc = the run's time "
                             "limit was reached") for stamp, t in cut]
        results_q.put({"conn": job["conn"], "results": results, "end": time.monotonic(), "reason": reason})
    finally:
        await channel.close()


def _process_main(job: dict, counter, start_at, go, results_q) -> None:
    try:
        asyncio.run(_drive(job, counter, start_at, go, results_q))
    except BaseException as e:  # noqa: BLE001 - report anything to the parent, then exit
        results_q.put({"conn": job["conn"], "error": f"worker {job['conn']}: {type(e).__name__}: {e}"})


def run(p: dict) -> dict:
    """Drive the server as planned; returns ghz's report as a dict."""
    ctx = mp.get_context("spawn")  # no gRPC state crosses a fork
    counter, start_at, go, results_q = ctx.Value("q", 0), ctx.Value("d", 0.0), ctx.Event(), ctx.Queue()
    conns = p["connections"]
    shares = [p["concurrency"] // conns + (1 if i < p["concurrency"] % conns else 0) for i in range(conns)]
    keys = ("method", "target", "total", "limit_s", "rps", "timeout_s", "connect_timeout_s", "duration_stop",
            "data", "binary", "metadata", "tls", "compression")
    procs = [ctx.Process(target=_process_main, daemon=True, name=f"loadgen-{i}",
                         args=({**{k: p[k] for k in keys}, "conn": i, "concurrency": shares[i]},
                               counter, start_at, go, results_q)) for i in range(conns)]

    def receive(deadline: float) -> dict:
        while True:
            try:
                return results_q.get(timeout=min(1.0, max(0.01, deadline - time.monotonic())))
            except queue_mod.Empty:
                if time.monotonic() > deadline:
                    raise LoadgenError("worker processes stopped answering") from None
                if not any(proc.is_alive() for proc in procs):
                    raise LoadgenError("worker processes exited without a report") from None

    try:
        for proc in procs:
            proc.start()
        ready = 0
        deadline = time.monotonic() + p["connect_timeout_s"] + 120  # spawn + imports, then the dial
        while ready < conns:
            msg = receive(deadline)
            if "error" in msg:
                raise LoadgenError(msg["error"])
            ready += 1
        start_at.value = time.monotonic() + 0.01
        go.set()
        reports = []
        grace = p["limit_s"] + ((p["timeout_s"] or 60) if p["duration_stop"] == "wait" else 0) + 60
        deadline = time.monotonic() + grace
        while len(reports) < conns:
            msg = receive(deadline)
            if "error" in msg:
                raise LoadgenError(msg["error"])
            reports.append(msg)
    finally:
        go.set()
        for proc in procs:
            proc.join(5)
            if proc.is_alive():
                proc.terminate()
                proc.join(5)
    total_ns = int((max(r["end"] for r in reports) - start_at.value) * 1e9)
    results = sorted((r for rep in reports for r in rep["results"]), key=lambda r: r[0] + r[1])
    reason = "timeout" if any(rep["reason"] == "timeout" for rep in reports) else "normal"
    return report(p, results[p["skip_first"]:], max(total_ns, 1), reason)


# ---------------------------------------------------------------------------------------------
# the report, in ghz's shape


def _rfc3339(ns: int) -> str:
    dt = datetime.fromtimestamp(ns / 1e9, timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ns % 10**9:09d}Z"


def latency_distribution(ok_sorted_s: list[float]) -> list[dict]:
    """ghz's percentiles: the rank-based value at 10, 25, 50, 75, 90, 95 and 99 %."""
    out = []
    n = len(ok_sorted_s)
    for pct in PERCENTILES:
        ip = pct / 100 * n
        i = int(ip) - 1 if ip == int(ip) else int(ip)
        out.append({"percentage": pct, "latency": int(round(ok_sorted_s[max(i, 0)] * 1e9))})
    return out


def histogram(ok_sorted_s: list[float], buckets: int = 10) -> list[dict]:
    """ghz's histogram: 11 marks from fastest to slowest (seconds); count of latencies up to each."""
    fastest, slowest = ok_sorted_s[0], ok_sorted_s[-1]
    step = (slowest - fastest) / buckets
    marks = [fastest + step * i for i in range(buckets)] + [slowest]
    counts = [0] * len(marks)
    b = 0
    for x in ok_sorted_s:
        while x > marks[b] and b < len(marks) - 1:
            b += 1
        counts[b] += 1
    n = len(ok_sorted_s)
    return [{"mark": m, "count": c, "frequency": c / n} for m, c in zip(marks, counts)]


def report(p: dict, results: list, total_ns: int, reason: str) -> dict:
    count = len(results)
    ok = sorted(r[1] / 1e9 for r in results if r[2] == "OK")
    options = {"host": p["target"], "call": p["call"], "insecure": p["tls"] is None,
               "total": p["total"] if p["n_given"] else 0, "concurrency": p["concurrency"],
               "connections": p["connections"], "rps": p["rps"],
               "duration": int(p["duration_s"] * 1e9), "max-duration": int(p["max_duration_s"] * 1e9),
               "timeout": int((p["timeout_s"] or 0) * 1e9), "dial-timeout": int(p["connect_timeout_s"] * 1e9),
               "skipFirst": p["skip_first"], "data-file": p["data_file"], "binary": p["binary"] is not None,
               "metadata": {k: ("<redacted>" if k == "authorization" else v) for k, v in p["metadata"].items()},
               "CPUs": os.cpu_count(), "name": p["name"]}
    rep = {"name": p["name"], "endReason": reason, "options": options, "date": _rfc3339(time.time_ns()),
           "count": count, "total": total_ns,
           "average": int(sum(r[1] for r in results) / count) if count else 0,
           "fastest": int(round(ok[0] * 1e9)) if ok else 0, "slowest": int(round(ok[-1] * 1e9)) if ok else 0,
           "rps": count / (total_ns / 1e9),
           "errorDistribution": dict(Counter(r[3] for r in results if r[3])),
           "statusCodeDistribution": dict(Counter(r[2] for r in results)),
           "latencyDistribution": latency_distribution(ok) if ok else [],
           "histogram": histogram(ok) if ok else [],
           "details": [{"timestamp": _rfc3339(r[0]), "latency": r[1], "error": r[3], "status": r[2]}
                       for r in results],
           "tool": "bench/loadgen.py"}
    if p["tags"]:
        rep["tags"] = p["tags"]
    return rep


def _dur(ns: float) -> str:
    if ns >= 1e9:
        return f"{ns / 1e9:.2f} s"
    if ns >= 1e6:
        return f"{ns / 1e6:.2f} ms"
    return f"{ns / 1e3:.2f} µs"


def summary(rep: dict) -> str:
    lines = ["", "Summary:"]
    if rep.get("name"):
        lines.append(f"  Name:\t\t{rep['name']}")
    lines += [f"  Count:\t{rep['count']}", f"  Total:\t{_dur(rep['total'])}", f"  Slowest:\t{_dur(rep['slowest'])}",
              f"  Fastest:\t{_dur(rep['fastest'])}", f"  Average:\t{_dur(rep['average'])}",
              f"  Requests/sec:\t{rep['rps']:.2f}", "", "Response time histogram:"]
    peak = max((b["count"] for b in rep["histogram"]), default=0)
    for b in rep["histogram"]:
        bar = "∎" * (round(40 * b["count"] / peak) if peak else 0)
        lines.append(f"  {b['mark'] * 1e3:10.3f} [{b['count']}]\t|{bar}")
    lines += ["", "Latency distribution:"]
    lines += [f"  {d['percentage']} % in {_dur(d['latency'])}" for d in rep["latencyDistribution"]]
    lines += ["", "Status code distribution:"]
    width = max((len(s) for s in rep["statusCodeDistribution"]), default=2)
    lines += [f"  [{s}]{' ' * (width - len(s) + 3)}{n} responses"
              for s, n in sorted(rep["statusCodeDistribution"].items(), key=lambda kv: -kv[1])]
    if rep["errorDistribution"]:
        lines += ["", "Error distribution:"]
        lines += [f"  [{n}]\t{e}" for e, n in sorted(rep["errorDistribution"].items(), key=lambda kv: -kv[1])]
    if rep["endReason"] != "normal":
        lines += ["", f"Ended by: {rep['endReason']} (the run's time limit)"]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# command line


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="loadgen.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n"
               "  .venv/bin/python bench/loadgen.py --config bench/ghz/identify_cropped.json\n"
               "  .venv/bin/python bench/loadgen.py --config bench/ghz/identify_embedding.json -c 32 -z 20s "
               "-O json -o out.json\n"
               "  .venv/bin/python bench/loadgen.py --config bench/ghz/enroll.json -n 50 "
               "-m '{\"authorization\": \"Bearer T\"}' 127.0.0.1:50051\n"
               "exit status: 0 when the run completed (whatever the RPCs returned), 2 on a usage error.")
    add = ap.add_argument
    add("host_arg", nargs="?", metavar="HOST:PORT", help="server to drive; overrides the config's host")
    add("--config", metavar="PATH", help="ghz JSON config (e.g. bench/ghz/identify_cropped.json)")
    add("--host", help="same as HOST:PORT")
    add("--call", help="method, e.g. facesearch.v1.FaceSearch.Identify")
    add("-c", "--concurrency", type=int, help=f"concurrent callers, split over the connections [{DEFAULT_CONCURRENCY}]")
    add("-n", "--total", type=int, help=f"requests to send [{DEFAULT_TOTAL}]")
    add("-z", "--duration", help="run for this long (e.g. 30s); total is then ignored, as in ghz")
    add("-x", "--max-duration", help=f"stop after this long even if total is not reached "
        f"[{DEFAULT_MAX_DURATION_S:g}s when neither -z nor -x is set]")
    add("--duration-stop", choices=("close", "ignore", "wait"),
        help="calls in flight at the time limit: reported Canceled, left out, or awaited [close]")
    add("-r", "--rps", type=int, help="requests per second over all connections [no limit]")
    add("--connections", type=int, help="worker processes, each with one gRPC connection [1]")
    add("-t", "--timeout", help=f"per-request deadline, 0 for none [{DEFAULT_TIMEOUT_S:g}s]")
    add("--connect-timeout", help=f"time to connect [{DEFAULT_CONNECT_TIMEOUT_S:g}s]")
    add("-d", "--data", help="request as JSON (an array is used round-robin); '@' reads stdin")
    add("-D", "--data-file", help="request JSON file")
    add("-B", "--binary-file", help="a serialized request message")
    add("-m", "--metadata", action="append",
        help="request metadata as JSON ('{\"authorization\": \"Bearer T\"}') or 'key: value'; repeatable")
    add("-M", "--metadata-file", help="metadata JSON file")
    add("--insecure", action="store_true", help="plaintext (the default unless --cacert or --cert is given)")
    add("--cacert", help="PEM roots to verify a TLS server")
    add("--cert", help="client certificate (PEM), with --key")
    add("--key", help="client private key (PEM)")
    add("--cname", help="TLS server name override")
    add("-e", "--enable-compression", action="store_true", help="gzip the requests")
    add("--skipFirst", dest="skip_first", type=int, help="leave the first N results out of the report")
    add("--name", help="a name for the run")
    add("-o", "--output", help="write the report here instead of stdout (the summary still prints)")
    add("-O", "--format", choices=("summary", "json", "pretty"),
        help="report format [summary; pretty when -o ends in .json]")
    for flag in ("--proto", "--protoset", "-i", "--import-paths"):  # ghz flags: the schema is compiled in here
        add(flag, dest=f"ignored_{flag.strip('-').replace('-', '_')}", help=argparse.SUPPRESS)
    return ap


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    try:
        p = plan(args)
        rep = run(p)
    except LoadgenError as e:
        print(f"loadgen: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("loadgen: interrupted", file=sys.stderr)
        return 130
    text = summary(rep) if p["format"] == "summary" else json.dumps(rep, indent=2 if p["format"] == "pretty" else None)
    if p["output"]:
        Path(p["output"]).write_text(text if text.endswith("\n") else text + "\n")
        if p["format"] != "summary":
            print(summary(rep), end="")
        print(f"wrote {p['output']}")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
