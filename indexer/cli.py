"""facesearch-indexer: bulk add, stats, list, delete, reindex, export and import of a gallery."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

import numpy as np
from sqlalchemy.engine import make_url

from facesearch.settings import SettingError, add_flags
from facesearch.embedder import EmbedderConfig, EmbedderError, FaceMode
from facesearch.gallery import Enrolment, Gallery, GalleryConfig, GalleryError, NewFace
from facesearch.sources import SourceError, scan

EPILOG = """exit codes: 0 done (unreadable or faceless files are reported, not fatal); 2 a fatal error:
no gallery, an unwritable data directory, a data directory held by a running server (use --server),
or a model that does not match the gallery (use reindex)."""


def _gallery_config(args) -> GalleryConfig:
    return GalleryConfig.from_args(args)


def _embedder_config(args) -> EmbedderConfig:
    return EmbedderConfig.from_args(args)


def cmd_add(args) -> int:
    from . import add

    items = scan(Path(args.gallery))
    mode = FaceMode.CROPPED if args.face_mode == "cropped" else FaceMode.DETECT
    progress = _progress(args)
    if args.server:
        with _client(args) as client:
            summary = add.add_remote(items, client, mode, batch_size=min(args.batch_size, 64), progress=progress)
    else:
        summary = _add_local(args, items, mode, progress)
    return _print_summary(args, summary)


def _add_local(args, items, mode: FaceMode, progress: bool):
    """add (and enroll-clusters) on the data directory: workers, the model, the gallery."""
    from . import add

    def work(embedder, pool, workers):
        with Gallery.open(_gallery_config(args), model_id=embedder.model_id, dimension=embedder.dimension) as g:
            return add.add_local(items, g, embedder, mode, workers=workers, batch_size=args.batch_size,
                                 progress=progress, pool=pool)
    return _with_model(args, mode, work)


def _with_model(args, mode: FaceMode, work):
    """work(embedder, pool, workers) with the detection workers started first, so that they load
    MTCNN while this process loads the embedding model; the pool is shut down after."""
    from facesearch.embedder import Embedder

    from . import add

    config = _embedder_config(args)
    workers = args.workers if args.workers is not None else (1 if mode == FaceMode.DETECT else 0)
    pool = add.start_workers(config, workers)
    try:
        embedder = Embedder.load(config)
        # trace the model and run one blank batch of the run's size while the workers load their
        # detector: the first real batch would otherwise pay the kernels' set-up (seconds)
        embedder.warmup([min(args.batch_size, config.max_batch)])
        return work(embedder, pool, workers)
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)


def _print_summary(args, summary) -> int:
    from . import add

    report = add.write_report(summary, Path(args.report) if args.report else None)
    print(f"added {report['added']}, skipped {report['skipped']} (already indexed), rejected {report['rejected']} "
          f"of {report['images']} images in {report['seconds']:.1f} s ({report['images_per_s']:.1f} images/s)")
    for r in summary.rejected:
        print(f"  rejected {r['path']}: {r['reason']}")
    return 0


def _progress(args) -> bool:
    return not args.quiet and sys.stderr.isatty() or args.progress


def cmd_cluster(args) -> int:
    from facesearch.embedder.distances import MAX_DISTANCE

    from . import cluster

    if (args.min_faces < 1 or not 0 < args.max_distance <= MAX_DISTANCE
            or not 0 <= args.attach_distance <= MAX_DISTANCE):
        raise SystemExit(f"facesearch-indexer cluster: --min-faces must be at least 1, --max-distance within "
                         f"(0, {MAX_DISTANCE:g}] and --attach-distance within [0, {MAX_DISTANCE:g}]")
    paths = cluster.photos(args.photos)
    mode = FaceMode.CROPPED if args.face_mode == "cropped" else FaceMode.DETECT
    if args.gallery and args.server:
        raise SystemExit("facesearch-indexer cluster: --gallery or --server, not both")
    if args.gallery and not Path(args.gallery).is_dir():
        raise GalleryError(f"--gallery {args.gallery}: no such data directory")

    def work(embedder, pool, workers):
        def go(search=None):
            return cluster.run_cluster(paths, Path(args.out), embedder, mode, pool=pool,
                                       max_distance=args.max_distance, min_faces=args.min_faces,
                                       attach_distance=args.attach_distance,
                                       batch_size=args.batch_size, progress=_progress(args), search=search)
        if args.gallery:
            config = _gallery_config(args).model_copy(update={"data_dir": Path(args.gallery)})
            with Gallery.open(config) as g:
                return go(cluster.gallery_search(g, embedder.model_id))
        if args.server:
            with _client(args) as client:
                return go(cluster.server_search(client, embedder.model_id))
        return go()

    content = _with_model(args, mode, work)
    sizes = [c["size"] for c in content["clusters"]]
    print(f"{len(sizes)} clusters ({sum(sizes)} faces, largest {sizes[0] if sizes else 0}), "
          f"{len(content['unclustered'])} faces unclustered, of {content['faces']} faces in "
          f"{content['images']} photos ({len(content['rejected'])} without a face or unreadable); "
          f"wrote {Path(args.out) / 'clusters.json'} and index.html")
    return 0


def cmd_enroll_clusters(args) -> int:
    from . import cluster

    items = cluster.named_items(Path(args.clusters), Path(args.names))
    mode = FaceMode.CROPPED if args.face_mode == "cropped" else FaceMode.DETECT
    return _print_summary(args, _add_local(args, items, mode, _progress(args)))


def _client(args):
    from facesearch.client import FaceSearchClient

    if args.ca_cert and not args.tls:
        raise SystemExit("facesearch-indexer: --ca-cert needs --tls")
    return FaceSearchClient(args.server, token=args.token or None, tls=args.tls, ca_cert=args.ca_cert, timeout=300)


def cmd_stats(args) -> int:
    with Gallery.open(_gallery_config(args)) as g:
        info = g.info()
    print(json.dumps(info.__dict__) if args.json else
          f"model {info.model_id} ({info.dimension}-d), {info.identity_count} identities, "
          f"{info.face_count} faces, index {info.index_type}")
    return 0


def cmd_calibrate(args) -> int:
    from facesearch.client.cli import describe_calibration

    with Gallery.open(_gallery_config(args)) as g:
        result = g.calibrate(args.target_fpir or 0.0, args.target_fnir or 0.0, apply=args.apply)
    print(json.dumps({**result.to_dict(), "applied": args.apply}) if args.json
          else describe_calibration(result, args.apply))
    return 0


def cmd_list(args) -> int:
    with Gallery.open(_gallery_config(args)) as g:
        token = ""
        while True:
            page, token = g.list_identities(500, token)
            for i in page:
                print(json.dumps({"identity_id": i.identity_id, "display_name": i.display_name,
                                  "faces": i.face_count}) if args.json else
                      f"{i.identity_id}\t{i.display_name}\t{i.face_count}")
            if not token:
                return 0


def cmd_delete(args) -> int:
    with Gallery.open(_gallery_config(args)) as g:
        try:
            n = g.delete_identity(args.identity_id)
        except KeyError as exc:
            print(f"facesearch-indexer: {exc}", file=sys.stderr)
            return 1
    print(f"deleted {args.identity_id} and its {n} face(s)")
    return 0


def cmd_reindex(args) -> int:
    from tqdm import tqdm

    from facesearch.embedder import Embedder, decode

    embedder = Embedder.load(_embedder_config(args))
    with Gallery.open(_gallery_config(args)) as g:
        old = g.model_id
        bar = tqdm(unit="face", disable=args.quiet, desc=f"reindex {old} -> {embedder.model_id}")

        def progress(done, total):
            bar.total = total
            bar.update(done - bar.n)

        n = g.reindex(embedder.model_id, embedder.dimension,
                      lambda crops: embedder.embed_crops([decode(c) for c in crops]), progress=progress)
        bar.close()
    print(f"re-embedded {n} faces: the gallery now holds {embedder.model_id} (was {old})")
    return 0


def cmd_export(args) -> int:
    out = open(args.out, "w") if args.out else sys.stdout
    with Gallery.open(_gallery_config(args)) as g, out:
        token, count = "", 0
        while True:
            page, token = g.list_identities(200, token)
            for ident in page:
                faces = g.faces_of(ident.identity_id)
                out.write(json.dumps({"identity_id": ident.identity_id, "display_name": ident.display_name,
                                      "metadata": ident.metadata, "model_id": g.model_id, "faces": faces}) + "\n")
                count += 1
            if not token:
                break
    print(f"exported {count} identities", file=sys.stderr)
    return 0


def cmd_import(args) -> int:
    rows = [json.loads(line) for line in Path(args.file).read_text().splitlines() if line.strip()]
    with Gallery.open(_gallery_config(args), model_id=rows[0]["model_id"] if rows else None,
                      dimension=len(rows[0]["faces"][0]["embedding"]) if rows and rows[0]["faces"] else None) as g:
        added = 0
        for start in range(0, len(rows), 100):
            chunk = rows[start:start + 100]
            enrolments = []
            for row in chunk:
                g.check_model(row["model_id"])
                known = g.existing_sources(row["identity_id"], [f["source_sha256"] for f in row["faces"]
                                                                if f.get("source_sha256")])
                faces = [NewFace(np.asarray(f["embedding"], np.float32), source_sha256=f.get("source_sha256"),
                                 source_path=f.get("source_path"), box=tuple(f["box"]) if f.get("box") else None)
                         for f in row["faces"] if not f.get("source_sha256") or f["source_sha256"] not in known]
                enrolments.append(Enrolment(row["identity_id"], faces, row.get("display_name"), row.get("metadata")))
            added += sum(len(r.face_ids) for r in g.add_batch(enrolments, model_id=g.model_id))
    print(f"imported {len(rows)} identities, {added} faces")
    return 0


def cmd_migrate(args) -> int:
    from tqdm import tqdm

    from facesearch.gallery.transfer import migrate

    source = _gallery_config(args)
    # secrets never on the command line, where `ps` shows them: files (or PGPASSWORD for PostgreSQL)
    def secret(path: str) -> str:
        try:
            return Path(path).read_text().strip()
        except OSError as exc:
            raise SystemExit(f"facesearch-indexer migrate: cannot read {path}: {exc.strerror or exc}") from None

    if args.to_database_url_file:
        args.to_database_url = secret(args.to_database_url_file)
    elif args.to_database_url and make_url(args.to_database_url).password:
        raise SystemExit("facesearch-indexer migrate: --to-database-url holds a password, which `ps` would show; "
                         "put the URL in a file for --to-database-url-file, or the password in PGPASSWORD")
    token = secret(args.to_milvus_token_file) if args.to_milvus_token_file else None
    if not (args.to_database_url or args.to_vector_backend or args.to_milvus_uri):
        raise SystemExit("facesearch-indexer migrate: give at least one of --to-database-url, --to-vector-backend, "
                         "--to-milvus-uri")
    index = source.index.model_copy(update={"kind": args.to_index}) if args.to_index else source.index
    target = source.model_copy(update={k: v for k, v in {
        "data_dir": Path(args.to_data_dir) if args.to_data_dir else None,
        "database_url": args.to_database_url, "vector_backend": args.to_vector_backend,
        "milvus_uri": args.to_milvus_uri, "milvus_token": token,
        "milvus_collection": args.to_milvus_collection}.items() if v} | {"index": index})
    bars: dict = {}

    def progress(table, done, total):
        bar = bars.get(table) or bars.setdefault(table, tqdm(total=total, unit="row", desc=table, disable=args.quiet))
        bar.update(done - bar.n)

    report = migrate(source, target, batch=args.batch_size, sample=args.sample, progress=progress)
    for bar in bars.values():
        bar.close()
    print(f"migrated {report.identities} identities and {report.faces} faces ({report.copied_identities} and "
          f"{report.copied_faces} copied in this run, the rest were there); index {report.index} holds "
          f"{report.indexed}; {report.sampled} sampled searches, {len(report.mismatches)} with another top-1")
    for m in report.mismatches[:10]:
        print(f"  face {m['face']}: source top-1 {m['source']}, target top-1 {m['target']}")
    if not report.ok:
        print("facesearch-indexer: the target does not answer like the source (see above)", file=sys.stderr)
        return 1
    return 0


def main(argv=None) -> int:
    from .cluster import DEFAULT_ATTACH_DISTANCE, DEFAULT_MAX_DISTANCE, DEFAULT_MIN_FACES

    parser = argparse.ArgumentParser(prog="facesearch-indexer", description=(
        "Bulk ingestion and maintenance of a facesearch gallery. Works on $FACESEARCH_DATA_DIR directly, "
        "or with `add --server` through a running server."), epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    add_flags(parser, GalleryConfig, only=["data_dir"])
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("add", help="index a folder <identity_id>/<images> or a CSV/JSONL manifest",
                       description="Index GALLERY: a folder laid out as <identity_id>/<images>, or a .csv/.jsonl "
                                   "manifest with path, identity_id and display_name. Re-running skips images "
                                   "already indexed for the same identity (same sha256), so an interrupted run "
                                   "resumes.")
    p.add_argument("gallery")
    p.add_argument("--face-mode", choices=["detect", "cropped"], default="detect",
                   help="detect faces (photos, with --detector), or take each image as a face crop [%(default)s]")
    p.add_argument("--workers", type=int, help="decode/detect processes, one TensorFlow thread each, besides this "
                                             "one, which detects too rather than wait (default: 1 for detect, 0 for "
                                             "cropped)")
    p.add_argument("--batch-size", type=int, default=64, help="faces per embedding batch and transaction [%(default)s]")
    p.add_argument("--server", help="HOST:PORT: enrol through a running server instead of the data directory")
    p.add_argument("--token", default=os.environ.get("FACESEARCH_AUTH_TOKEN", ""),
                   help="bearer token for --server [FACESEARCH_AUTH_TOKEN, the server's]")
    p.add_argument("--tls", action="store_true", help="connect to --server with TLS (system roots unless --ca-cert)")
    p.add_argument("--ca-cert", help="PEM file to trust for --server's TLS (e.g. a self-signed certificate)")
    add_flags(p, EmbedderConfig, only=["model", "detector"])
    p.add_argument("--report", help="write the summary, with every rejected file and why, to this JSON file")
    p.add_argument("--progress", action="store_true", help="show the progress bar even when not on a terminal")
    p.set_defaults(run=cmd_add)

    p = sub.add_parser(
        "cluster", help="group the faces of unlabelled photos into proposed people (docs/clustering.md)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Detect and embed every face in the photos given (folders are searched recursively for "
                    ".jpg .jpeg .png .bmp .webp), group them into people by density (DBSCAN on the k-nearest-"
                    "neighbour graph), and write OUT/clusters.json, OUT/index.html (a contact sheet that opens "
                    "offline) and its thumbnails in OUT/faces/. Nothing is enrolled: name clusters, then "
                    "run enroll-clusters. The same photos give the same output.",
        epilog="example:\n  facesearch-indexer cluster ~/event-photos --out clusters --gallery var\n"
               "  printf 'c0001,chris_evans,Chris Evans\\n' > names.csv\n"
               "  facesearch-indexer --data-dir var enroll-clusters clusters/clusters.json --names names.csv")
    p.add_argument("photos", nargs="+", metavar="PHOTO_OR_DIR")
    p.add_argument("--out", required=True, help="folder for clusters.json, index.html and faces/")
    p.add_argument("--max-distance", type=float, default=DEFAULT_MAX_DISTANCE,
                   help="faces within this distance (service scale) are neighbours; smaller splits people into "
                        "more clusters, larger merges look-alikes [%(default)s, chosen in docs/clustering.md]")
    p.add_argument("--min-faces", type=int, default=DEFAULT_MIN_FACES,
                   help="neighbours (itself included) a face needs to found a cluster; the smallest cluster kept "
                        "[%(default)s]")
    p.add_argument("--attach-distance", type=float, default=DEFAULT_ATTACH_DISTANCE,
                   help="then a face left unclustered joins the cluster of its nearest clustered face within this "
                        "distance (it cannot link two clusters); 0: off [%(default)s]")
    p.add_argument("--face-mode", choices=["detect", "cropped"], default="detect",
                   help="find every face with MTCNN, or take each image as one face crop [%(default)s]")
    p.add_argument("--gallery", metavar="DATA_DIR", help="name each cluster's nearest enrolled identity from this "
                                                        "data directory (not one a server holds: use --server)")
    p.add_argument("--server", help="HOST:PORT: the same from a running server")
    p.add_argument("--token", default=os.environ.get("FACESEARCH_AUTH_TOKEN", ""),
                   help="bearer token for --server [FACESEARCH_AUTH_TOKEN]")
    p.add_argument("--tls", action="store_true", help="connect to --server with TLS")
    p.add_argument("--ca-cert", help="PEM file to trust for --server's TLS")
    p.add_argument("--workers", type=int, help="decode/detect processes besides this one [1 for detect, 0 for "
                                             "cropped]")
    p.add_argument("--batch-size", type=int, default=64, help="faces per embedding batch [%(default)s]")
    add_flags(p, EmbedderConfig, only=["model"])
    p.add_argument("--progress", action="store_true", help="show the progress bar even when not on a terminal")
    p.set_defaults(run=cmd_cluster)

    p = sub.add_parser(
        "enroll-clusters", help="enrol the faces of named clusters from a cluster run",
        description="Enrol, into the data directory, the faces of each cluster that NAMES names. NAMES is a CSV "
                    "of cluster_id,identity_id[,display_name] (a header row is optional); several clusters may "
                    "name one identity. Each face is found again at its box in its photo; dedupe, rejection "
                    "reasons and the report are add's.")
    p.add_argument("clusters", metavar="CLUSTERS_JSON")
    p.add_argument("--names", required=True, help="CSV: cluster_id,identity_id[,display_name]")
    p.add_argument("--face-mode", choices=["detect", "cropped"], default="detect",
                   help="as the cluster run was made [%(default)s]")
    p.add_argument("--workers", type=int, help="decode/detect processes besides this one [1 for detect]")
    p.add_argument("--batch-size", type=int, default=64, help="faces per embedding batch and transaction "
                                                              "[%(default)s]")
    add_flags(p, EmbedderConfig, only=["model"])
    p.add_argument("--report", help="write the summary, with every rejected face and why, to this JSON file")
    p.add_argument("--progress", action="store_true", help="show the progress bar even when not on a terminal")
    p.set_defaults(run=cmd_enroll_clusters)

    p = sub.add_parser("stats", help="model, counts and index type")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=cmd_stats)
    p = sub.add_parser("calibrate", help="fit the default cutoff to the enrolled faces (docs/calibration.md)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--target-fnir", type=float, help="enrolled faces missed, at most (genuine side) [0.01]")
    g.add_argument("--target-fpir", type=float, help="strangers accepted, at most (impostor side)")
    p.add_argument("--apply", action="store_true", help="store it in the gallery: servers use it as their default")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=cmd_calibrate)
    p = sub.add_parser("list", help="identities with their face counts")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=cmd_list)
    p = sub.add_parser("delete", help="delete an identity and its faces")
    p.add_argument("identity_id")
    p.set_defaults(run=cmd_delete)
    p = sub.add_parser("reindex", help="re-embed every stored crop with another model and switch to it")
    p.add_argument("--model", required=True, help="model spec: facenet-128, facenet-128+sface, keras-facenet:<key> "
                                                  "or an export folder")
    p.set_defaults(run=cmd_reindex)
    p = sub.add_parser("export", help="JSONL of identities, metadata and embeddings")
    p.add_argument("--out", help="file to write (default: stdout)")
    p.set_defaults(run=cmd_export)
    p = sub.add_parser("import", help="add identities from an export's JSONL (skips faces already present)")
    p.add_argument("file")
    p.set_defaults(run=cmd_import)
    p = sub.add_parser(
        "migrate", help="copy the gallery to another database and/or vector backend (e.g. PostgreSQL + Milvus)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Copy the gallery that the usual settings name (FACESEARCH_DATA_DIR, FACESEARCH_DATABASE_URL, "
                    "FACESEARCH_VECTOR_BACKEND...: the source, e.g. SQLite + FAISS in ./var) to the target the "
                    "--to-* flags name (unset ones are the source's): identities, faces, embeddings and crops with "
                    "all their columns and ids, in id order and batches; then the target's index is built from its "
                    "database, and the counts and a sample of searches (same top-1 face) are checked. An "
                    "interrupted run resumes: run the same command again. Stop the server on the source first.",
        epilog="example:\n  PGPASSWORD=... facesearch-indexer migrate \\\n"
               "      --to-database-url postgresql+psycopg://facesearch@db/facesearch \\\n"
               "      --to-vector-backend milvus --to-milvus-uri http://milvus:19530\n"
               "exit codes: 0 migrated and verified; 1 copied but a check failed; 2 a fatal error")
    p.add_argument("--to-database-url", help="SQLAlchemy URL of the target database (postgresql+psycopg://...)")
    p.add_argument("--to-vector-backend", choices=["faiss", "milvus"], help="the target's vector backend")
    p.add_argument("--to-milvus-uri", help="the target's Milvus: http://host:19530, or a file for Milvus Lite")
    p.add_argument("--to-database-url-file", help="a file holding the target's database URL, for one with a "
                                                  "password (never on the command line)")
    p.add_argument("--to-milvus-token-file", help="a file holding the target Milvus's token (user:password or an "
                                                  "API key)")
    p.add_argument("--to-milvus-collection", help="the target's Milvus collection [the source's setting; unset: "
                   "named after the model]")
    p.add_argument("--to-index", choices=["flat", "ivf", "hnsw"], help="the target's index kind [the source's]")
    p.add_argument("--to-data-dir", help="the target's data directory (FAISS snapshots, Milvus Lite file, lock) "
                                         "[the source's; a FAISS target needs one of its own]")
    p.add_argument("--batch-size", type=int, default=1000, help="rows per copy transaction [%(default)s]")
    p.add_argument("--sample", type=int, default=200, help="faces searched on both sides to verify [%(default)s]")
    p.set_defaults(run=cmd_migrate)

    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.run(args)
    except (SourceError, GalleryError, EmbedderError, SettingError) as exc:
        print(f"facesearch-indexer: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("facesearch-indexer: interrupted; what was written is kept, run again to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
