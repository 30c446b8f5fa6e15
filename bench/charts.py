"""The PNG plots of bench/REPORT.md, each drawn from the result files by bench.report."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402

from bench.report import loadtest_runs, num  # noqa: E402

PLAIN = FuncFormatter(lambda x, _: f"{x:g}")


def _cdf(ax, values_ms: list[float], label: str, **kw) -> None:
    xs = sorted(values_ms)
    n = len(xs)
    ax.step(xs, [(i + 1) / n for i in range(n)], where="post", label=f"{label} (n={n})", **kw)


def _loadtest_latencies(d: dict) -> list[float]:
    details = [x["latency"] / 1e6 for x in d.get("details") or [] if x.get("status") == "OK"]
    return details


def _save(fig, out: Path) -> bool:
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return True


def plot_throughput(results: dict, out: Path) -> bool:
    server, lt = results.get("server"), results.get("loadtest")
    if not server and not lt:
        return False
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    ax = axes[0]
    rows = (server or {}).get("identify_cropped", [])
    if rows:
        ax.plot([r["concurrency"] for r in rows], [r["qps"] for r in rows], "o-", label="server: Identify cropped")
        raw = server.get("raw_embedder_crops_per_s", {})
        if raw:
            ax.axhline(max(raw.values()), ls="--", c="grey", label="raw embedder, best batch (same run)")
    ax.set_title("Identify, cropped face")
    ax2 = axes[1]
    rows = (server or {}).get("identify_embedding", [])
    if rows:
        bare = server["bare_gallery"]
        ax2.plot([r["concurrency"] for r in rows], [r["qps"] for r in rows], "o-", c="C2",
                 label=f"server: Identify embedding ({num(bare['faces'])} faces)")
        ax2.axhline(bare["batch1_qps"], ls="--", c="grey", label="Gallery.search batch 1 (same run)")
        ax2.axhline(bare["batch64_qps"], ls=":", c="black", label="Gallery.search batch 64 (same run)")
    ax2.set_title("Identify, embedding")
    for run in loadtest_runs(lt):
        for a, key in ((ax, "identify_cropped"), (ax2, "identify_embedding")):
            if key in str(run.get("config", "")):
                a.plot([run["options"]["concurrency"]], [run["rps"]], "s", ms=9,
                       label=f"make loadtest, {lt.get('tool')} (its own run)")
    for a in axes:
        a.set_xscale("log", base=2)
        a.xaxis.set_major_formatter(PLAIN)
        a.set_xlabel("concurrent requests")
        a.set_ylabel("requests/s")
        a.set_ylim(bottom=0)
        a.grid(alpha=0.3)
        if a.lines:
            a.legend(fontsize=8)
        else:
            a.text(0.5, 0.5, "no results", ha="center", transform=a.transAxes)
    return _save(fig, out)


def plot_latency_cdf(results: dict, out: Path) -> bool:
    server, lt = results.get("server") or {}, results.get("loadtest")
    panels = {"identify_cropped": "Identify, cropped face", "identify_embedding": "Identify, embedding"}
    series: dict[str, list] = {k: [] for k in panels}
    for key in panels:
        for r in server.get(key, []):
            if r.get("latencies_ms"):
                series[key].append((f"server.py, concurrency {r['concurrency']}", r["latencies_ms"], {}))
    for run in loadtest_runs(lt):
        if not _loadtest_latencies(run):
            continue
        label = f"make loadtest, {lt.get('tool')}, concurrency {run['options']['concurrency']}"
        key = next((k for k in panels if k in str(run.get("config", ""))), None)
        if key is None:
            key = Path(str(run.get("config") or "loadtest")).stem
            panels[key] = run.get("name") or key
            series[key] = []
        series[key].append((label, _loadtest_latencies(run), {"lw": 2.2, "c": "black"}))
    if not any(series.values()):
        return False
    keys = [k for k in panels if series[k]]
    fig, axes = plt.subplots(1, len(keys), figsize=(5.5 * len(keys), 4.2), squeeze=False)
    for ax, key in zip(axes[0], keys):
        for label, values, kw in series[key]:
            _cdf(ax, values, label, **kw)
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(PLAIN)
        ax.xaxis.set_minor_formatter(FuncFormatter(lambda x, _: f"{x:g}" if str(x)[0] in "25" else ""))
        ax.set_xlabel("latency, ms (log scale)")
        ax.set_ylabel("share of requests at or below")
        ax.set_ylim(0, 1.01)
        ax.set_title(panels[key])
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="upper left")
    return _save(fig, out)


def plot_embedder(results: dict, out: Path) -> bool:
    d = results.get("embedder")
    if not d or not d.get("crops"):
        return False
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    batches = [c["batch"] for c in d["crops"]]
    ax.plot(batches, [c["crops_per_s"] for c in d["crops"]], "o-", label="Embedder.embed_crops")
    ax.plot(batches, [c["predict_crops_per_s"] for c in d["crops"]], "o--", c="grey", label="model.predict (same run)")
    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_formatter(PLAIN)
    ax.set_xlabel("batch size")
    ax.set_ylabel("crops/s")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("FaceNet throughput by batch")
    return _save(fig, out)


def plot_photos(results: dict, out: Path) -> bool:
    """Identify on photos against concurrency, after this work, with the figures from before it."""
    d = results.get("photos")
    if not d or not d.get("identify_photo"):
        return False
    rows = d["identify_photo"]
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.plot([r["concurrency"] for r in rows], [r["qps"] for r in rows], "o-", label="Identify on photos (now)")
    ax.axhline(d["raw"]["crops_per_s_b64"] * 0.5, ls=":", color="grey", label="goal: 0.5x the raw model")
    before = d.get("before_this_work", {})
    if "photos_per_s" in before:
        ax.plot(*zip(*sorted((int(c), q) for c, q in before["photos_per_s"].items())), "s--",
                label="before (eager MTCNN)")
    previous = d.get("previous_run", {})
    if "photos_per_s" in previous:
        ax.plot(*zip(*sorted((int(c), q) for c, q in previous["photos_per_s"].items())), "^:",
                label="compiled, PNet per level and size")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("concurrency")
    ax.set_ylabel("photos/s")
    ax.legend()
    ax.set_title("Identify on photos (5-celebrity val) against concurrency")
    return _save(fig, out)


def plot_soak(results: dict, out: Path) -> bool:
    d = results.get("soak")
    if not d or not d.get("samples"):
        return False
    t = [s["t"] / 60 for s in d["samples"]]
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.plot(t, [s["rss_mib"] for s in d["samples"]], color="tab:blue", label="server RSS (MiB)")
    ax.set_xlabel("minutes")
    ax.set_ylabel("RSS (MiB)")
    ax2 = ax.twinx()
    ax2.plot(t, [s["qps"] for s in d["samples"]], color="tab:orange", label="requests/s")
    ax2.set_ylabel("requests/s")
    fig.legend(loc="lower right")
    ax.set_title("Soak: server RSS and throughput")
    return _save(fig, out)


def plot_gallery(results: dict, out: Path) -> bool:
    d = results.get("gallery")
    if not d or not d.get("results"):
        return False
    sizes = sorted({r["n"] for r in d["results"]})
    fig, axes = plt.subplots(1, len(sizes), figsize=(4.5 * len(sizes), 3.8), squeeze=False)
    for ax, n in zip(axes[0], sizes):
        rows = [r for r in d["results"] if r["n"] == n]
        xs = range(len(rows))
        ax.bar([x - 0.2 for x in xs], [r["gallery"]["qps_batch64"] for r in rows], 0.4, label="Gallery.search")
        ax.bar([x + 0.2 for x in xs], [r["bare"]["qps_batch64"] for r in rows], 0.4, color="grey",
               label="bare FAISS (same run)")
        ax.set_xticks(list(xs), [r["type"] for r in rows])
        ax.set_ylim(0, 1.3 * max(max(r["gallery"]["qps_batch64"], r["bare"]["qps_batch64"]) for r in rows))
        ax.set_title(f"N = {n:,}: QPS at batch 64")
        ax.grid(alpha=0.3, axis="y")
        ax.legend(fontsize=8, loc="upper left", ncols=2)
    return _save(fig, out)
