"""Build bench/REPORT.md and its plots (bench/plots/*.png) from the results in bench/results/.

    .venv/bin/python -m bench.report [--results bench/results] [--out bench/REPORT.md]

`make bench` runs it last; it also runs alone, on whatever result files exist: a missing
file is skipped, and a file this script does not know (or whose shape changed) gets a
generic table. Each section states its ratios against the baseline measured in the same
run, and every file's machine, versions and git commit are listed, since the files may
come from different runs.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from pathlib import Path

from bench.common import VERSIONS

BENCH = Path(__file__).resolve().parent
ORDER = ["embedder", "gallery", "gallery_rw", "backends", "backends_replicas", "indexer", "server", "http",
         "loadtest", "trainer", "trainer_gpu"]
BIG_LISTS = {"details", "latencies_ms", "histogram", "qps_batch64_rounds"}


# ---------------------------------------------------------------------------------------------
# formatting


def num(x, digits: int = 3) -> str:
    """A figure for a table: integers with separators, floats with about `digits` significant digits."""
    if x is None:
        return "–"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, int):
        return f"{x:,}"
    if isinstance(x, float):
        if math.isnan(x) or math.isinf(x):
            return str(x)
        if x == 0:
            return "0"
        mag = math.floor(math.log10(abs(x)))
        if mag >= digits - 1:
            return f"{x:,.0f}"
        return f"{x:.{max(0, digits - 1 - mag)}f}"
    return str(x).replace("|", "\\|").replace("\n", " ")


def table(headers: list[str], rows: list[list]) -> str:
    out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join(c if isinstance(c, str) else num(c) for c in row) + " |" for row in rows]
    return "\n".join(out) + "\n"


def ns_ms(ns) -> float | None:
    return None if ns is None else ns / 1e6


# ---------------------------------------------------------------------------------------------
# one section per known result file; each returns markdown


def section_embedder(d: dict) -> str:
    rows = [[c["batch"], c["crops_per_s"], c["predict_crops_per_s"], c["ratio_vs_predict"]] for c in d["crops"]]
    md = ("Crops embedded per second by batch size, against plain `model.predict` on the same crops, "
          "interleaved in the same run. **Ratio = embed_crops / predict** (above 1: faster than predict).\n\n")
    md += table(["batch", "crops/s", "predict crops/s", "ratio vs predict"], rows)
    md += "\n" + table(["model load s", "photos/s (MTCNN + embed, one by one)", "photos/s (batches of 16)",
                        "peak RSS MiB"],
                       [[d.get("load_s"), d.get("photos_per_s"), d.get("photos_batched16_per_s"),
                         d.get("peak_rss_mib")]])
    return md


def section_gallery(d: dict) -> str:
    rows = []
    for r in d["results"]:
        g, b = r["gallery"], r["bare"]
        rows.append([r["n"], r["type"], g["p50_ms"], g["p99_ms"], g["qps_batch64"], b["p50_ms"], b["qps_batch64"],
                     r["ratio_qps_batch64"], r["ratio_p50_batch1"], g.get("recall@1"), g.get("recall@10"),
                     g.get("identity_hit@1"), r.get("add_tail_faces_per_s"), r.get("restart_s")])
    md = ("Gallery.search against a bare FAISS index over the same vectors, interleaved in the same run "
          "(synthetic clustered 128-d unit vectors). **Ratios = gallery / bare**: QPS at batch 64 (1.00 = no "
          "overhead, goal ≥ 0.9) and batch-1 p50 latency (1.00 = no overhead, higher = slower).\n\n")
    md += table(["N", "index", "p50 ms", "p99 ms", "QPS b64", "bare p50 ms", "bare QPS b64", "ratio QPS b64",
                 "ratio p50 b1", "R@1", "R@10", "identity hit@1", "add faces/s", "restart s"], rows)
    sizes = [[s["n"], s.get("bulk_add_faces_per_s"), s.get("db_bytes"), s.get("exact_top1_is_own_identity")]
             for s in d.get("sizes", [])]
    if sizes:
        md += "\n" + table(["N", "bulk add faces/s (SQL path)", "database bytes", "exact top-1 is own identity"],
                           sizes)
    if d.get("notes"):
        md += "\n" + "".join(f"- {n}\n" for n in d["notes"])
    return md


def section_gallery_rw(d: dict) -> str:
    alone = d["search_qps_alone"]
    alone_v = sorted(alone)[len(alone) // 2] if isinstance(alone, list) else alone
    md = ("Two threads searching a flat gallery (batch 64), alone and while a third thread writes, in the "
          "same run. **Ratio = searches/s with the writer / searches/s alone.**\n\n")
    md += table(["faces", "seconds", "search QPS alone", "search QPS with writer", "ratio", "writer changes/s"],
                [[d.get("faces"), d.get("seconds"), " / ".join(num(a) for a in alone) if isinstance(alone, list)
                  else alone_v, d["search_qps_with_writer"], d["ratio"], d.get("writer_changes_per_s")]])
    return md


def section_indexer(d: dict) -> str:
    rows = []
    for kind in ("crops", "photos"):
        if kind in d:
            r = d[kind]
            s = r.get("summary", {})
            rows.append([kind, r["images"], s.get("added"), s.get("rejected"), r["indexer_per_s"], r["raw_per_s"],
                         r["ratio"]])
    md = ("`facesearch-indexer add` against the raw pipeline it wraps (decode + embed, and MTCNN for photos), "
          "in the same run. **Ratio = indexer images/s / raw images/s.**\n\n")
    return md + table(["images", "count", "added", "rejected", "indexer images/s", "raw images/s", "ratio"], rows)


def section_server(d: dict) -> str:
    raw = d.get("raw_embedder_crops_per_s", {})
    md = ("Identify through a real facesearch-server (grpc.aio clients in the benchmark process). Cropped "
          "faces: **ratio = server QPS / the raw embedder's best crops/s** (decode + embed_crops at batch "
          f"{', '.join(raw)}: {', '.join(num(v) for v in raw.values())} crops/s), measured in the same run. "
          "Embeddings: **ratios = server QPS / Gallery.search QPS in-process**, at batch 1 and at batch 64, "
          "same run, same gallery.\n\n")
    rows = [[r["concurrency"], r["requests"], r["qps"], r["p50_ms"], r["p99_ms"], r["ratio_vs_raw_embedder"]]
            for r in d.get("identify_cropped", [])]
    if rows:
        md += "**Identify, cropped faces**\n\n" + table(["concurrency", "requests", "QPS", "p50 ms", "p99 ms",
                                                          "ratio vs raw embedder"], rows)
    bare = d.get("bare_gallery")
    rows = [[r["concurrency"], r["requests"], r["qps"], r["p50_ms"], r["p99_ms"], r["ratio_vs_bare_batch1"],
             r["ratio_vs_bare_batch64"]] for r in d.get("identify_embedding", [])]
    if rows:
        md += (f"\n**Identify, embeddings** ({num(bare['faces'])} clustered synthetic faces; bare Gallery.search: "
               f"batch 1 {num(bare['batch1_qps'])} QPS, batch 64 {num(bare['batch64_qps'])} QPS)\n\n")
        md += table(["concurrency", "requests", "QPS", "p50 ms", "p99 ms", "ratio vs bare b1", "ratio vs bare b64"],
                    rows)
    if not any("latencies_ms" in r for r in d.get("identify_cropped", [])):
        md += ("\n_This file predates per-request latencies (`latencies_ms`); rerun `python -m bench.server` for its "
               "latency CDFs._\n")
    return md


def section_http(d: dict) -> str:
    md = ("One facesearch-server, both transports over one service; at each concurrency gRPC and REST runs "
          f"alternate for {d.get('rounds', 1)} round(s), each keeping its median. gRPC: grpc.aio stubs; REST: one "
          "httpx.AsyncClient, crops as multipart file parts, embeddings as JSON; both clients in the benchmark "
          "process (client CPU ms: its CPU time per request, taken from the server's 2 cores). **Ratio = REST "
          f"QPS / gRPC QPS**, same run. Goal: at least {d.get('goal_ratio_crops_c8', 0.8)} on crops at "
          "concurrency 8.\n\n")
    rows = []
    for r in d.get("levels", []):
        for kind in ("crops", "embedding"):
            g, h = r[f"grpc_{kind}"], r[f"rest_{kind}"]
            rows.append([r["concurrency"], kind, g["requests"], g["qps"], h["qps"], r[f"ratio_{kind}"], g["p50_ms"],
                         h["p50_ms"], g["p99_ms"], h["p99_ms"], g.get("client_cpu_ms"), h.get("client_cpu_ms")])
    return md + table(["concurrency", "Identify by", "requests", "gRPC QPS", "REST QPS", "REST / gRPC",
                       "gRPC p50 ms", "REST p50 ms", "gRPC p99 ms", "REST p99 ms", "client CPU ms gRPC",
                       "client CPU ms REST"], rows)


def loadtest_runs(d: dict | None) -> list[dict]:
    """The ghz reports in loadtest.json, one per config (older files held one report at the top level)."""
    return (d.get("runs") or [d]) if d else []


def section_loadtest(d: dict) -> str:
    g = d.get("gallery") or {}
    extra = " ".join(d.get("extra_flags") or [])
    md = (f"`make loadtest`: {d.get('tool', '?')} {d.get('ghz', '')} ran each config{' with ' + extra if extra else ''}"
          f" against a real server holding {g.get('source', 'a gallery')}: {num(g.get('faces'))} faces, "
          f"{num(g.get('identities'))} identities; ghz shares the cores with the server. **Ratio = requests/s / "
          "requests/s of GetInfo** (no model, no search) at the same concurrency in the same run: the share of the "
          "gRPC + load-generator ceiling that the call reaches.\n\n")
    rows = []
    for r in loadtest_runs(d):
        lat = {x["percentage"]: ns_ms(x["latency"]) for x in r.get("latencyDistribution") or []}
        o, b = r.get("options", {}), r.get("baseline") or {}
        codes = ", ".join(f"{k}: {v}" for k, v in (r.get("statusCodeDistribution") or {}).items())
        rows.append([f"`{r.get('config', '?')}`", f"{o.get('concurrency')} / {o.get('connections', 1)}", r["count"],
                     r["total"] / 1e9, r["rps"], ns_ms(r["average"]), lat.get(50), lat.get(90), lat.get(99),
                     f"{codes or '–'} ({r.get('endReason', '?')})", b.get("rps"), r.get("ratio_rps_vs_baseline")])
    md += table(["config", "concurrency / connections", "count", "total s", "requests/s", "average ms", "p50 ms",
                 "p90 ms", "p99 ms", "status codes (end)", "GetInfo requests/s", "ratio"], rows)
    return md


def _generic_rows(value, prefix: str = "") -> list[list]:
    rows = []
    if isinstance(value, dict):
        for k, v in value.items():
            if k in BIG_LISTS or k == "machine":
                continue
            rows += _generic_rows(v, f"{prefix}{k}.")
    elif isinstance(value, list):
        if value and all(isinstance(v, (int, float, str, bool)) or v is None for v in value):
            shown = ", ".join(num(v) for v in value[:12]) + (" …" if len(value) > 12 else "")
            rows.append([prefix.rstrip("."), shown])
        elif value and not all(isinstance(v, dict) for v in value):
            rows.append([prefix.rstrip("."), f"{len(value)} items"])
    else:
        rows.append([prefix.rstrip("."), value])
    return rows


def section_generic(d: dict) -> str:
    """Any result file: scalars as key/value rows, lists of records as their own tables."""
    md = ""
    scalars = _generic_rows({k: v for k, v in d.items() if not (isinstance(v, list) and v
                                                                 and all(isinstance(x, dict) for x in v))})
    if scalars:
        md += table(["key", "value"], scalars[:80])
    for k, v in d.items():
        if k in BIG_LISTS or not (isinstance(v, list) and v and all(isinstance(x, dict) for x in v)):
            continue
        cols = [c for c in v[0] if all(not isinstance(x.get(c), (dict, list)) for x in v)][:12]
        if cols:
            md += f"\n**{k}**\n\n" + table(cols, [[x.get(c) for c in cols] for x in v[:50]])
    ratios = sorted({r[0] for r in scalars if any(w in r[0] for w in ("ratio", "speedup", "_vs_"))})
    if ratios:
        md += ("\nRatios in this file (against the baseline that its benchmark measures in the same run): "
               + ", ".join(f"`{r}`" for r in ratios) + ".\n")
    return md or "_(no figures)_\n"


def section_backends(d: dict) -> str:
    runs = d.get("runs") or [{"n": d["n"], "results": d["results"], "notes": []}]   # older files: one run
    md = (f"One index per backend over the same clustered {d['dimension']}-d unit vectors "
          f"({d['faces_per_identity']} noisy faces per identity), through facesearch's own index classes, at "
          f"each N in one run. Insert rate: until searchable with the index built. Recall@1 against the exact "
          "top-1 (FAISS flat, the baseline, same N); **ratio = QPS at batch 64 / the baseline's**.\n\n")
    rows = []
    for run in runs:
        base = next((r for r in run["results"] if r["backend"] == d.get("baseline")), None)
        for r in run["results"]:
            ratio = r["qps_batch64"] / base["qps_batch64"] if base else None
            rows.append([r["backend"], r["description"], r["n"], r.get("insert_faces_per_s"), r["qps_batch1"],
                         r["qps_batch64"], ratio, r["p50_ms"], r["p99_ms"], r["recall@1"]])
    md += table(["backend", "index", "N", "insert faces/s", "QPS b1", "QPS b64", "ratio QPS b64", "p50 ms b1",
                 "p99 ms b1", "R@1"], rows)
    lag = d.get("replica_lag")
    if lag:
        md += (f"\n**Replica lag** (FAISS, {lag['database']}, following every {lag['follow_ms']:.0f} ms): from a "
               f"write's acknowledgement on replica A until a search on replica B finds it, over {lag['writes']} "
               f"writes: p50 {lag['p50_ms']:.0f} ms, p99 {lag['p99_ms']:.0f} ms, max {lag['max_ms']:.0f} ms.\n")
    notes = [f"N = {run['n']:,}: {n}" for run in runs for n in run.get("notes", [])] + d.get("notes", [])
    if notes:
        md += "\n" + "".join(f"- {n}\n" for n in notes)
    return md


def section_replicas(d: dict) -> str:
    r = d.get("replicas") or {}
    pairs = r.get("pairs") or {}
    if not pairs:
        return "_(no figures)_\n"
    md = (f"Two facesearch-server replicas per backend on one {r['database']} database of {r['faces']:,} faces, "
          "one pair at a time, driven through gRPC with Identify by embedding (top_k 1) from client threads "
          "alternating between the two replicas. Milvus replicas search at the guarantee timestamp of the "
          "newest committed write (read your writes across replicas); **ratio = Milvus QPS / FAISS QPS** at "
          "the same concurrency.\n\n")
    faiss = {x["concurrency"]: x for x in pairs.get("faiss", [])}
    rows = []
    for backend, levels in pairs.items():
        for x in levels:
            base = faiss.get(x["concurrency"])
            rows.append([backend, x["concurrency"], x["requests"], x["qps"], x["p50_ms"], x["p99_ms"],
                         x["qps"] / base["qps"] if base and backend != "faiss" else None, x["matched"]])
    return md + table(["replicas", "concurrency", "requests", "QPS", "p50 ms", "p99 ms", "ratio QPS", "matched"],
                      rows)


def section_detect(d: dict) -> str:
    md = (f"The {d.get('photos')} 5-celebrity val photos, detectors interleaved over {d.get('rounds')} rounds. "
          "**Ratio = time per photo / eager `mtcnn`'s**, same run.\n\n")
    md += table(["detector", "ms per photo", "p90 ms", "time vs eager", "photos with a face"],
                [[name, r["ms_per_photo"], r["ms_p90"], r["time_vs_eager"], r["photos_with_a_face"]]
                 for name, r in d["detectors"].items()])
    stages = d.get("stages", {})
    if stages:
        names = list(next(iter(stages.values()))["ms_per_photo"])
        md += "\n**The photo path's stages**, ms per photo (share of the whole)\n\n"
        md += table(["stage"] + [mode.replace("_", " ") for mode in stages],
                    [[name] + [f"{num(s['ms_per_photo'][name])} ({s['share'][name]:.0%})" for s in stages.values()]
                     for name in names])
    return md


def section_models(d: dict) -> str:
    t = d["throughput"]
    md = ("Detectors and models in one run (`bench/models.py`, rounds interleaved). Accuracy is over every pair "
          "of each set, cut to the images where both detectors find a face; distances on the service scale; "
          "10-fold over the genuine pairs and as many impostor pairs.\n\n")
    md += table(["detector", "ms per photo (25 val photos, 16 a call)", "5-celebrity photos with a face",
                 "Avengers crops with a face"],
                [[name, r["ms_per_photo"], r["photos_with_a_face"].get("5-celebrity"),
                  r["photos_with_a_face"].get("avengers")] for name, r in d["detection"].items()])
    md += (f"\n**Embedding at batch 64**: facenet-128 {num(t['facenet-128_crops_per_s'])} crops/s, "
           f"facenet-128+sface {num(t['facenet-128+sface_crops_per_s'])} crops/s "
           f"(**{num(t['fused_vs_facenet'])}×**), SFace alone {num(t['sface_alone_crops_per_s'])} crops/s.\n\n")
    rows = []
    for model, per in d["accuracy"].items():
        for det, sets in per.items():
            for name, f in sets.items():
                rows.append([model, det, name, f"{f['tar_at_far_1e-3']:.2%}", f"{f['accuracy_10fold_balanced']:.2%}",
                             f["d_prime"],
                             f"{f['genuine']['mean']:.2f} ± {f['genuine']['sd']:.2f}",
                             f"{f['impostor']['mean']:.2f} ± {f['impostor']['sd']:.2f}"])
    md += table(["model", "detector", "set", "TAR at FAR 1e-3", "10-fold", "d'", "genuine", "impostor"], rows)
    for det, r in d.get("open_set", {}).items():
        rejected = r["strangers_rejected_at_3.5"]
        md += (f"\nAvengers seed split, facenet-128 + {det} (photos mode): top-1 {num(r['top1_whole_gallery'])}, "
               f"strangers rejected at 3.5: {rejected[0]}/{rejected[1]}.\n")
    return md


def section_cluster(d: dict) -> str:
    sets = [(name, d[key]) for key, name in (("celebrities", "5-celebrity photos"), ("avengers", "Avengers crops"))
            if d.get(key)]
    md = ("`facesearch-indexer cluster`'s code on labelled faces (docs/clustering.md): BCubed and pairwise precision "
          "(P) and recall (R) against the true names; an unclustered face is a cluster of its own. Goal on the "
          "defaults: BCubed P >= 0.97 and R >= 0.95 on both sets.\n\n")
    rows = []
    for name, r in sets:
        x = r["defaults"]
        rows.append([f"{name}: defaults (max {x['max_distance']}, min {x['min_faces']}, attach "
                     f"{x.get('attach_distance', 0)})", r["faces"], x["bcubed_precision"], x["bcubed_recall"],
                     x["pairwise_precision"], x["pairwise_recall"], x["clusters"]])
        for s in r["sweep"]:
            if s["min_faces"] == x["min_faces"]:
                rows.append([f"{name}: plain DBSCAN max {s['max_distance']}", r["faces"], s["bcubed_precision"],
                             s["bcubed_recall"], s["pairwise_precision"], s["pairwise_recall"], s["clusters"]])
        for s in r.get("sweep_attach", []):
            rows.append([f"{name}: defaults with attach {s['attach_distance']}", r["faces"], s["bcubed_precision"],
                         s["bcubed_recall"], s["pairwise_precision"], s["pairwise_recall"], s["clusters"]])
    md += table(["set, parameters", "faces", "BCubed P", "BCubed R", "pairwise P", "pairwise R", "clusters"], rows)
    cost = [[name, r["find_and_embed_s_per_1000_faces"], r["cluster_s_per_1000_faces"]] for name, r in sets]
    md += "\n" + table(["set", "find + embed, s per 1,000 faces (one process)", "cluster, s per 1,000 faces"], cost)
    syn = d.get("synthetic")
    if syn:
        md += (f"\n{syn['faces']:,} synthetic faces around {syn['centres']:,} centres: clustered in "
               f"{syn['seconds']} s, peak RSS {syn['peak_rss_mib']} MiB (the whole process, vectors included), "
               f"{syn['clusters']:,} clusters, BCubed P {syn['bcubed_precision_sampled']} / R {syn['bcubed_recall_sampled']} (sampled).\n")
    return md


def section_crops(d: dict) -> str:
    rates, stages = d["crops_per_s"], d["stages"]
    md = (f"Identify on crops at concurrency {d['grpc_server']['concurrency']}, one stage added per row on the "
          f"same {d['crops']} crops; each stage's cost is the difference of its row and the one before. "
          f"**Identify on crops over gRPC = {d['identify_crop_vs_raw']:.2f}x the raw model** (row 3), same run.\n\n")
    md += table(["row", "crops/s", "stage cost, ms per crop", "share"],
                [[name, num(rates[name], 1), num(stages[name]["ms_per_crop"], 2), f"{stages[name]['share']:.0%}"]
                 for name in stages])
    return md


def section_peer(d: dict) -> str:
    md = (f"The {d['photos']} sample val photos, {d['passes']} passes a round, alternating {len(d['peer'])} times: "
          f"face_recognition in {d['processes']} processes against facesearch's Identify ({d['detector']}) at "
          f"concurrency {d['concurrency']} through a real server. **facesearch = {d['ratio']:.2f}x "
          f"face_recognition.**\n\n")
    rows = [[f"face_recognition, {d['processes']} processes", f"{d['peer_photos_per_s']:.1f}",
             f"{d['peer_faces_found']:.0f}/{d['photos']}"],
            [f"facesearch Identify, c{d['concurrency']}", f"{d['facesearch_photos_per_s']:.1f}",
             f"{d['facesearch_faces_found']}/{d['photos']}"]]
    return md + table(["system", "photos/s", "faces found"], rows)


def section_trainer_gpu(d: dict) -> str:
    md = (f"Keras on JAX, random weights and inputs, {d['batch_size']} triplets a step "
          f"({3 * d['batch_size']} images); each platform in a process of its own. head: the trainable head on "
          "cached features (the trainer's default); full: the whole network per step (`--no-feature-cache`); "
          "feature pass: the frozen base at batch 64.\n\n")
    rows = [[f"{r['platform']} ({r['device']})", r["precision"], num(r["head"]["steps_per_s"]),
             num(r["full"]["steps_per_s"]), num(r["feature_pass_images_per_s"]),
             ", ".join(f"{k} {v:.1f}x" for k, v in r.get("vs_cpu", {}).items()) or "baseline"] for r in d["runs"]]
    return md + table(["platform", "precision", "head steps/s", "full steps/s", "feature pass images/s",
                       "against the CPU"], rows)


SECTIONS = {"trainer_gpu": section_trainer_gpu, "crops": section_crops, "peer": section_peer, "embedder": section_embedder, "models": section_models, "detect": section_detect, "gallery": section_gallery,
            "gallery_rw": section_gallery_rw, "cluster": section_cluster,
            "indexer": section_indexer, "server": section_server, "http": section_http, "loadtest": section_loadtest,
            "backends": section_backends, "backends_replicas": section_replicas}
TITLES = {"embedder": "Embedder (`bench/embedder.py`)", "gallery": "Gallery (`bench/gallery.py`)",
          "gallery_rw": "Gallery readers and a writer (`bench/gallery_rw.py`)",
          "backends": "Vector backends: FAISS, Milvus Lite, Milvus server (`bench/backends.py`)",
          "backends_replicas": "Replicas through gRPC: two on the Milvus server against two on FAISS "
                               "(`bench/backends.py --n --replicas 100000`)",
          "indexer": "Indexer (`bench/indexer.py`)", "server": "Server (`bench/server.py`)",
          "http": "REST/JSON against gRPC (`bench/http.py`)",
          "loadtest": "Load test (`make loadtest`, `bench/loadtest.py`)", "trainer": "Trainer (`bench/trainer.py`)",
          "trainer_gpu": "The trainer on a GPU against the CPU (`bench/trainer_gpu.py`)",
          "photos": "The photo path against the raw model (`bench/photos.py`)",
          "crops": "Where Identify on crops spends its time: a stage breakdown (`bench/crops.py`)",
          "photos-yunet": "The photo path with YuNet against the raw model (`bench/photos.py --detector yunet`)",
          "peer": "facesearch against face_recognition on the same photos (`bench/peer.py`)",
          "models": "Detectors and models: speed and accuracy of each pair (`bench/models.py`)",
          "detect": "Face detection: eager, compiled and batched MTCNN, and the cost of each stage (`bench/detect.py`)",
          "calibrate": "Calibrate at 100k faces (`bench/calibrate.py`)",
          "soak": "Soak (`make soak`, `bench/soak.py`)",
          "cluster": "Clustering faces into people (`bench/cluster.py`)"}


# ---------------------------------------------------------------------------------------------


def git_head() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=BENCH, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def load_results(folder: Path) -> dict:
    results = {}
    for path in sorted(folder.glob("*.json")):
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as e:
            print(f"skipping {path}: {e}", file=sys.stderr)
            continue
        if isinstance(data, dict):
            results[path.stem] = data
    return results


def _shown(path: Path) -> str:
    path = path.resolve()
    return str(path.relative_to(BENCH.parent)) if path.is_relative_to(BENCH.parent) else str(path)


def build(results: dict, out: Path, folder: Path = BENCH / "results") -> str:
    plots_dir = out.parent / "plots"
    plots_dir.mkdir(exist_ok=True)
    names = sorted(results, key=lambda n: (ORDER.index(n) if n in ORDER else len(ORDER), n))
    md = ["# Benchmark report", "",
          f"Generated {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} by `python -m bench.report` at commit "
          f"`{git_head() or '?'}` from {len(names)} result file(s) in `{_shown(folder)}/`. Each file records the "
          "commit and date of its own run (table below), so files can come from different runs.", "",
          "These machines are shared and noisy: the same figure moves about 2× between runs. Compare the "
          "**ratios**, each measured against a baseline in the same run, not absolute figures across files.", ""]
    if not names:
        md += ["_No results yet: run `make bench` (or one `python -m bench.<name>`)._", ""]
    machines = []
    for n in names:
        m = results[n].get("machine", {})
        v = m.get("versions", {})
        machines.append([f"`{n}.json`", m.get("date", "?"), f"`{m.get('commit', '?')}`", m.get("cores"),
                         m.get("cpu", "?"), m.get("python", "?"),
                         ", ".join(f"{k} {v[k]}" for k in VERSIONS if k in v)])
    if machines:
        md += ["## Machine, versions and commit of each run", "",
               table(["file", "date (UTC)", "commit", "cores", "CPU", "Python", "versions"], machines)]

    from bench.charts import (plot_embedder, plot_gallery, plot_latency_cdf, plot_photos, plot_soak,
                              plot_throughput)  # here: charts uses this module's helpers

    plots = [("throughput.png", plot_throughput, "Throughput against concurrency, with each run's baselines"),
             ("latency_cdf.png", plot_latency_cdf, "Latency CDFs (every request)"),
             ("embedder.png", plot_embedder, "Embedder throughput by batch"),
             ("gallery.png", plot_gallery, "Gallery search against bare FAISS"),
             ("photos.png", plot_photos, "Identify on photos against concurrency, before and after"),
             ("soak.png", plot_soak, "Soak: server RSS and throughput over time")]
    drawn = []
    for name, fn, title in plots:
        path = plots_dir / name
        try:
            ok = fn(results, path)
        except (KeyError, TypeError, ValueError, IndexError) as e:
            print(f"plot {name} skipped: {type(e).__name__}: {e}", file=sys.stderr)
            ok = False
        if ok:
            drawn.append(f"### {title}\n\n![{title}](plots/{name})\n")
        elif path.exists():
            path.unlink()  # a stale plot from results that are gone
    if drawn:
        md += ["## Plots", "", *drawn]

    for n in names:
        md += [f"## {TITLES.get(n, f'`{n}.json`')}", ""]
        d = results[n]
        fn = SECTIONS.get(n, section_generic)
        try:
            body = fn(d)
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as e:
            body = (f"_The shape of `{n}.json` is not the one this report knows ({type(e).__name__}: {e}); "
                    "shown generically._\n\n" + section_generic(d))
        md += [body]
    text = "\n".join(md).rstrip() + "\n"
    out.write_text(text)
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", type=Path, default=BENCH / "results", help="folder of result JSON files")
    parser.add_argument("--out", type=Path, default=BENCH / "REPORT.md", help="report path (plots go beside it)")
    args = parser.parse_args()
    results = load_results(args.results) if args.results.is_dir() else {}
    build(results, args.out, args.results)
    print(f"wrote {args.out} from {len(results)} result file(s): {', '.join(sorted(results)) or 'none'}")


if __name__ == "__main__":
    main()
