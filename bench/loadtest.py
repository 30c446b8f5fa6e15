"""Load test (`make loadtest`): a real facesearch-server with the sample gallery, driven by ghz.

    .venv/bin/python -m bench.loadtest [--config bench/ghz/identify_cropped.json ...] [--no-baseline]
                                       [-- FLAGS FOR GHZ, e.g. -n 100 -c 8]

1. Starts facesearch-server on a temporary data directory and an ephemeral port; every
   batch shape is traced before it reports SERVING.
2. Enrols the 5-celebrity sample gallery (train photos, detected by the server) through
   Enroll: the gallery `make serve` serves.
3. Runs each config (default: every bench/ghz/*.json, Enroll last since it writes) with ghz
   from the repository root, as it runs by hand, the server's address replacing the config's
   host; then, as the same-run baseline, GetInfo (no model, no search) at the same
   concurrency and connections: the ceiling that gRPC, the server loop and ghz set here.
4. Writes ghz's own JSON report of each config to bench/results/ghz/<config>.json, and
   bench/results/loadtest.json: the machine, ghz's version, the gallery, and per config
   ghz's report with its baseline and the ratio of the two.

ghz is the one in this virtualenv (`make ghz` builds it there with Go), else the one on PATH.
The server is stopped however the run ends. Figures on this shared 2-core machine move
about 2x between runs; ghz runs on the same cores as the server.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import common

from facesearch.client import FaceSearchClient
from facesearch.embedder import WeightsCache
from facesearch.testing import ServerProcess

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
CONFIGS = BENCH / "ghz"
BASELINE_CALL = "facesearch.v1.FaceSearch.GetInfo"
GHZ_MISSING = ("ghz is not installed. With Go (https://go.dev/dl/), `make ghz` builds it into .venv/bin; without "
               "Go, put a release binary of ghz (https://github.com/bojand/ghz/releases) on PATH or in .venv/bin")

# ghz flags that the GetInfo baseline does not take over from the run: it has its own call, data and count.
BASELINE_DROPS = ("-d", "--data", "-D", "--data-file", "-B", "--binary-file", "--call", "-n",
                  "--total", "-z", "--duration", "-x", "--max-duration")


def find_ghz() -> str | None:
    """ghz in this virtualenv (where `make ghz` builds it), else on PATH."""
    local = Path(sys.executable).parent / "ghz"
    return str(local) if os.access(local, os.X_OK) else shutil.which("ghz")


def ghz_version(ghz: str) -> str:
    done = subprocess.run([ghz, "--version"], capture_output=True, text=True, timeout=30)
    return (done.stdout + done.stderr).strip()


def run_ghz(ghz: str, config: Path, target: str, out: Path, extra: list[str] = (), quiet: bool = False,
            timeout: float = 900) -> dict:
    """Run one ghz config against target from the repository root (configs name their files from there);
    returns ghz's JSON report, also left at `out`."""
    cmd = [ghz, "--config", shown(config), "-O", "json", "-o", shown(out), *extra, target]
    if not quiet:
        print("$ " + " ".join(cmd), flush=True)
    done = subprocess.run(cmd, cwd=REPO, capture_output=quiet, text=True, timeout=timeout)
    if done.returncode != 0 or not out.is_file():
        raise RuntimeError(f"ghz failed with exit status {done.returncode}: {done.stderr or ''}".strip())
    return json.loads(out.read_text())


def without(flags: list[str], drops: tuple[str, ...]) -> list[str]:
    """The flags minus the dropped ones and their values."""
    out, skip = [], False
    for a in flags:
        if skip:
            skip = False
        elif a in drops:
            skip = True
        elif not a.startswith(tuple(d + "=" for d in drops if d.startswith("--"))):
            out.append(a)
    return out


def enrol_samples(target: str) -> dict:
    root = WeightsCache().sample_gallery() / "train"
    added = photos = 0
    t = time.perf_counter()
    with FaceSearchClient(target, timeout=600) as client:
        for person in sorted(p for p in root.iterdir() if p.is_dir()):
            images = [p.read_bytes() for p in sorted(person.glob("*.jpg"))]
            reply = client.enroll(person.name, images, display_name=person.name.replace("_", " ").title())
            added += len(reply.face_ids)
            photos += len(images)
        info = client.info()
    seconds = time.perf_counter() - t
    print(f"enrolled {added} faces from {photos} photos in {seconds:.1f} s "
          f"({info.identity_count} identities, model {info.model_id})", flush=True)
    return {"source": "the 5-celebrity sample gallery (train photos, faces detected by the server)",
            "photos": photos, "faces": added, "identities": info.identity_count, "model_id": info.model_id,
            "index_type": info.index_type, "enrol_s": seconds}


def baseline(ghz: str, config: dict, target: str, tmp: Path, extra: list[str], count: int) -> dict:
    """GetInfo with the run's concurrency, connections and flags: the same-run ceiling."""
    base = {k: v for k, v in config.items()
            if k not in ("data-file", "binary-file", "data", "duration", "max-duration")}
    base.update({"name": "GetInfo (same-run baseline: gRPC, server loop, ghz)", "call": BASELINE_CALL,
                 "data": {}, "total": max(1000, count)})
    (tmp / "baseline.json").write_text(json.dumps(base))
    rep = run_ghz(ghz, tmp / "baseline.json", target, tmp / "baseline-report.json", without(extra, BASELINE_DROPS))
    return {"call": BASELINE_CALL, **{k: rep.get(k) for k in ("count", "total", "average", "fastest", "slowest",
                                                              "rps", "statusCodeDistribution",
                                                              "latencyDistribution")}}


def shown(path: Path) -> str:
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, action="append",
                        help="a ghz config; repeatable [every bench/ghz/*.json]")
    parser.add_argument("--no-baseline", action="store_true", help="skip the GetInfo baseline runs")
    parser.add_argument("extra", nargs=argparse.REMAINDER, help="after --: flags passed to ghz for every config")
    args = parser.parse_args()
    extra = args.extra[1:] if args.extra[:1] == ["--"] else args.extra
    ghz = find_ghz()
    if ghz is None:
        raise SystemExit(GHZ_MISSING)
    version = ghz_version(ghz)
    paths = [p.resolve() for p in args.config or CONFIGS.glob("*.json")]
    configs = {p: json.loads(p.read_text()) for p in paths}
    paths.sort(key=lambda p: (configs[p].get("call", "").endswith(".Enroll"), p.name))  # writes go last
    reports = common.RESULTS / "ghz"
    reports.mkdir(parents=True, exist_ok=True)

    tmp = Path(tempfile.mkdtemp(prefix="facesearch-loadtest-"))
    server_args = ["--warmup-batch", "64"]
    proc = ServerProcess(tmp / "data", *server_args)
    runs = []
    try:
        t = time.perf_counter()
        proc.start(timeout=600)
        start_s = time.perf_counter() - t
        print(f"server SERVING on {proc.target} after {start_s:.1f} s; ghz {version} at {ghz}", flush=True)
        gallery = enrol_samples(proc.target)
        for path in paths:
            out = reports / f"{path.stem}.json"
            rep = run_ghz(ghz, path, proc.target, out, extra)
            run = {"config": shown(path), "report": shown(out), **rep}
            if not args.no_baseline:
                run["baseline"] = baseline(ghz, configs[path], proc.target, tmp, extra, rep["count"])
                run["ratio_rps_vs_baseline"] = rep["rps"] / run["baseline"]["rps"] if run["baseline"]["rps"] else None
            codes = ", ".join(f"{k} {v}" for k, v in rep.get("statusCodeDistribution", {}).items())
            print(f"{configs[path].get('name', path.name)}: {rep['count']} calls ({codes}), {rep['rps']:.1f}/s"
                  + (f"; GetInfo baseline {run['baseline']['rps']:.1f}/s, ratio {run['ratio_rps_vs_baseline']:.3f}"
                     if "baseline" in run else ""), flush=True)
            runs.append(run)
    finally:
        if proc.proc is not None and proc.proc.poll() is None:
            try:
                proc.terminate(timeout=60)
            except subprocess.TimeoutExpired:
                proc.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    common.write("loadtest", {"tool": "ghz", "ghz": version, "extra_flags": extra,
                              "server": {"args": server_args, "start_s": start_s}, "gallery": gallery, "runs": runs})


if __name__ == "__main__":
    main()
