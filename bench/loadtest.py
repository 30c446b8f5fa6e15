"""Load test (`make loadtest`): a real facesearch-server with the sample gallery, driven by ghz or loadgen.

    .venv/bin/python -m bench.loadtest [--config bench/ghz/identify_cropped.json] [--tool auto|ghz|loadgen]
                                       [-- FLAGS FOR THE TOOL, e.g. -n 100 -c 8]

1. Starts facesearch-server on a temporary data directory and an ephemeral port; every
   batch shape is traced before it reports SERVING.
2. Enrols the 5-celebrity sample gallery (train photos, detected by the server) through
   Enroll: the gallery `make serve` serves.
3. Runs the config with ghz when `ghz` is on PATH, else with bench/loadgen.py; then, as the
   same-run baseline, GetInfo (no model, no search) at the same concurrency and connections:
   the ceiling that gRPC, the server loop and the load generator set on this machine.
4. Writes ghz's JSON report, with the machine, tool, gallery and baseline, to
   bench/results/loadtest.json.

The server is stopped however the run ends. Figures on this shared 2-core machine move
about 2x between runs; the load generator runs on the same cores as the server.
"""

from __future__ import annotations

import argparse
import json
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
DEFAULT_CONFIG = BENCH / "ghz" / "identify_cropped.json"
BASELINE_CALL = "facesearch.v1.FaceSearch.GetInfo"


BASELINE_DROPS = ("-d", "--data", "-D", "--data-file", "-B", "--binary-file", "--call", "-n", "--total", "-z",
                  "--duration", "-x", "--max-duration")


def without(flags: list[str], drops: tuple[str, ...]) -> list[str]:
    """The flags minus the dropped ones and their values (for the baseline: its own call, data and count)."""
    out, skip = [], False
    for a in flags:
        if skip:
            skip = False
        elif a in drops:
            skip = True
        elif not a.startswith(tuple(d + "=" for d in drops if d.startswith("--"))):
            out.append(a)
    return out


def tool_command(tool: str, config: Path, target: str, out: Path, extra: list[str]) -> list[str]:
    head = ["ghz"] if tool == "ghz" else [sys.executable, str(BENCH / "loadgen.py")]
    return [*head, "--config", str(config), "-O", "json", "-o", str(out), *extra, target]


def run_tool(tool: str, config: Path, target: str, out: Path, extra: list[str]) -> dict:
    cmd = tool_command(tool, config, target, out, extra)
    print("$ " + " ".join(cmd), flush=True)
    done = subprocess.run(cmd, cwd=REPO, timeout=900)
    if done.returncode != 0 or not out.is_file():
        raise SystemExit(f"{tool} failed with exit status {done.returncode}")
    return json.loads(out.read_text())


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="ghz config [%(default)s]")
    parser.add_argument("--tool", choices=("auto", "ghz", "loadgen"), default="auto",
                        help="auto: ghz when it is on PATH, else bench/loadgen.py")
    parser.add_argument("--no-baseline", action="store_true", help="skip the GetInfo baseline run")
    parser.add_argument("extra", nargs=argparse.REMAINDER, help="after --: flags passed to ghz or loadgen")
    args = parser.parse_args()
    extra = args.extra[1:] if args.extra[:1] == ["--"] else args.extra
    tool = args.tool if args.tool != "auto" else ("ghz" if shutil.which("ghz") else "loadgen")
    if tool == "ghz" and not shutil.which("ghz"):
        raise SystemExit("--tool ghz: ghz is not on PATH")
    config_path = args.config.resolve()
    config = json.loads(config_path.read_text())

    tmp = Path(tempfile.mkdtemp(prefix="facesearch-loadtest-"))
    server_args = ["--warmup-batch", "64"]
    proc = ServerProcess(tmp / "data", *server_args)
    try:
        t = time.perf_counter()
        proc.start(timeout=600)
        start_s = time.perf_counter() - t
        print(f"server SERVING on {proc.target} after {start_s:.1f} s", flush=True)
        gallery = enrol_samples(proc.target)
        rep = run_tool(tool, config_path, proc.target, tmp / "report.json", extra)
        baseline = None
        if not args.no_baseline:
            base_config = {k: v for k, v in config.items() if k not in ("data-file", "binary-file", "data")}
            base_config.update({"name": "GetInfo (same-run baseline: gRPC, server loop, load generator)",
                                "call": BASELINE_CALL, "data": {}, "total": max(1000, rep["count"])})
            base_config.pop("duration", None)
            base_path = tmp / "baseline.json"
            base_path.write_text(json.dumps(base_config))
            base_extra = without(extra, BASELINE_DROPS)
            base = run_tool(tool, base_path, proc.target, tmp / "baseline-report.json", base_extra)
            baseline = {k: base[k] for k in ("count", "total", "average", "fastest", "slowest", "rps",
                                             "statusCodeDistribution", "latencyDistribution")}
            baseline["call"] = BASELINE_CALL
    finally:
        if proc.proc is not None and proc.proc.poll() is None:
            try:
                proc.terminate(timeout=60)
            except subprocess.TimeoutExpired:
                proc.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    results = {"tool": tool, "config": str(config_path.relative_to(REPO)) if config_path.is_relative_to(REPO)
               else str(config_path), "extra_flags": extra, "server": {"args": server_args, "start_s": start_s},
               "gallery": gallery, "baseline": baseline}
    if baseline:
        results["ratio_rps_vs_baseline"] = rep["rps"] / baseline["rps"] if baseline["rps"] else None
        print(f"{config.get('name', config_path.name)}: {rep['rps']:.1f} requests/s; GetInfo baseline "
              f"{baseline['rps']:.1f}/s in the same run; ratio {results['ratio_rps_vs_baseline']:.3f}")
    common.write("loadtest", {**rep, **results})  # ghz's report, then what ran it


if __name__ == "__main__":
    main()
