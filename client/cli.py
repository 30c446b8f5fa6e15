"""facesearch-client: identify, enroll, verify, list, delete, info, calibrate and the admin commands (rename,
merge, move, faces, face-image) against a running server."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import grpc
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.json_format import MessageToDict

from .client import DEFAULT_TARGET, FaceMode, FaceSearchClient


RAW = argparse.RawDescriptionHelpFormatter


def _mode(args) -> int:
    return FaceMode.Value("FACE_MODE_CROPPED") if args.cropped else FaceMode.Value("FACE_MODE_DETECT")


_INT64 = {FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_SINT64,
          FieldDescriptor.TYPE_FIXED64, FieldDescriptor.TYPE_SFIXED64}


def _numbers(descriptor, value):
    """proto3's JSON mapping writes 64-bit integers as strings; scripts want numbers (Python's are exact)."""
    if not isinstance(value, dict):
        return value
    for field in descriptor.fields:
        if field.name not in value or field.message_type is not None and field.message_type.GetOptions().map_entry:
            continue
        if field.type in _INT64:
            value[field.name] = ([int(v) for v in value[field.name]] if isinstance(value[field.name], list)
                                 else int(value[field.name]))
        elif field.message_type is not None:
            items = value[field.name] if isinstance(value[field.name], list) else [value[field.name]]
            for item in items:
                _numbers(field.message_type, item)
    return value


def as_json(message) -> str:
    """One line of JSON: every field, named as in the proto, numbers as numbers."""
    return json.dumps(_numbers(message.DESCRIPTOR, MessageToDict(
        message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)))


def _say(args, message, human: str) -> None:
    print(as_json(message) if args.json else human)


def cmd_identify(c: FaceSearchClient, args) -> int:
    for path in args.photos:
        r = c.identify(path, top_k=args.top_k, max_distance=args.max_distance, face_mode=_mode(args),
                       source=args.source)
        lines = [f"{path}: {len(r.faces)} face(s)"]
        for f in r.faces:
            where = f"at {f.box.x},{f.box.y} {f.box.width}x{f.box.height}"
            if f.known:
                best = ", ".join(f"{m.display_name or m.identity_id} ({m.identity_id}) {m.distance:.2f}"
                                 for m in f.matches)
                lines.append(f"  {where}: {best}")
            else:
                lines.append(f"  {where}: unknown")
        _say(args, r, "\n".join(lines))
    return 0


def cmd_enroll(c: FaceSearchClient, args) -> int:
    r = c.enroll(args.identity_id, args.photos, display_name=args.name or "", face_mode=_mode(args))
    lines = [f"{r.identity_id}: {'created, ' if r.created else ''}{len(r.face_ids)} face(s) enrolled"]
    lines += [f"  warning: {args.photos[w.index]}: {w.message}" for w in r.warnings]
    lines += [f"  rejected: {args.photos[x.index]}: {x.reason}" for x in r.rejected]
    _say(args, r, "\n".join(lines))
    return 0 if r.face_ids else 1


def cmd_verify(c: FaceSearchClient, args) -> int:
    r = c.verify(args.identity_id, args.photo, max_distance=args.max_distance, face_mode=_mode(args))
    human = ("no face found" if not r.face_found else
             f"{'match' if r.match else 'no match'}: distance {r.distance:.2f} (face {r.face_id})")
    _say(args, r, human)
    return 0 if r.match else 1


def cmd_list(c: FaceSearchClient, args) -> int:
    count = 0
    for ident in c.iter_identities(page_size=args.page_size, prefix=args.prefix):
        count += 1
        _say(args, ident, f"{ident.identity_id}\t{ident.display_name}\t{ident.face_count} face(s)")
    if not args.json:
        print(f"{count} identities", file=sys.stderr)
    return 0


def cmd_delete(c: FaceSearchClient, args) -> int:
    r = c.delete_identity(args.identity_id)
    _say(args, r, f"deleted {args.identity_id} and its {r.faces_deleted} face(s)")
    return 0


def _metadata(pairs: list[str]) -> dict[str, str]:
    """KEY=VALUE arguments as a dict."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"facesearch-client: --metadata {pair!r} is not KEY=VALUE")
        out[key] = value
    return out


def cmd_rename(c: FaceSearchClient, args) -> int:
    metadata = {} if args.clear_metadata else (_metadata(args.metadata) if args.metadata else None)
    r = c.update_identity(args.identity_id, display_name=args.name, metadata=metadata)
    meta = ", ".join(f"{k}={v}" for k, v in sorted(r.metadata.items()))
    _say(args, r, f"{r.identity_id}: display name {r.display_name!r}, metadata {{{meta}}}")
    return 0


def cmd_merge(c: FaceSearchClient, args) -> int:
    moved = c.merge_identities(args.sources, args.into)
    if args.json:
        print(json.dumps({"faces_moved": moved}))
    else:
        print(f"merged {', '.join(args.sources)} into {args.into}: {moved} face(s) moved")
    return 0


def cmd_move(c: FaceSearchClient, args) -> int:
    moved = c.move_faces(args.face_ids, args.to, create_if_missing=args.create)
    if args.json:
        print(json.dumps({"faces_moved": moved}))
    else:
        print(f"{moved} face(s) moved to {args.to}")
    return 0


def cmd_faces(c: FaceSearchClient, args) -> int:
    count = 0
    for f in c.iter_faces(args.identity_id, page_size=args.page_size):
        count += 1
        box = f"{f.box.x},{f.box.y} {f.box.width}x{f.box.height}" if f.HasField("box") else "-"
        when = f.created_at.ToDatetime().strftime("%Y-%m-%dT%H:%M:%SZ")
        _say(args, f, f"{f.face_id}\t{box}\tscore {f.detection_score:.3f}\t{'crop' if f.has_image else 'no crop'}"
                      f"\t{when}\t{f.source_path or f.source_sha256[:12] or '(embedding)'}")
    if not args.json:
        print(f"{count} face(s)", file=sys.stderr)
    return 0


def cmd_face_image(c: FaceSearchClient, args) -> int:
    jpeg = c.face_image(args.face_id)
    if args.out == "-":
        sys.stdout.buffer.write(jpeg)
        return 0
    out = Path(args.out or f"face-{args.face_id}.jpg")
    out.write_bytes(jpeg)
    print(f"wrote {out} ({len(jpeg)} bytes)", file=sys.stderr)
    return 0


def cmd_unknown(c: FaceSearchClient, args) -> int:
    count = 0
    for u in c.iter_unknown_clusters(page_size=args.page_size):
        count += 1
        first, last = (t.ToDatetime().strftime("%Y-%m-%dT%H:%M:%SZ") for t in (u.first_seen, u.last_seen))
        _say(args, u, f"{u.cluster_id}\t{u.size} face(s)\t{first} .. {last}\t{','.join(u.sources) or '-'}"
                      f"\tfaces {' '.join(u.sample_face_ids)}")
    if not args.json:
        print(f"{count} cluster(s)", file=sys.stderr)
    return 0


def cmd_unknown_image(c: FaceSearchClient, args) -> int:
    jpeg = c.unknown_face_image(args.face_id)
    out = Path(args.out or f"unknown-{args.face_id}.jpg")
    out.write_bytes(jpeg)
    print(f"wrote {out} ({len(jpeg)} bytes)", file=sys.stderr)
    return 0


def cmd_unknown_enroll(c: FaceSearchClient, args) -> int:
    r = c.enroll_unknown_cluster(args.cluster_id, args.identity_id, display_name=args.name or "")
    _say(args, r, f"{r.identity_id}: {'created, ' if r.created else ''}{len(r.face_ids)} face(s) enrolled"
                  f"{f', {len(r.duplicates)} duplicate(s)' if r.duplicates else ''}")
    return 0


def cmd_unknown_delete(c: FaceSearchClient, args) -> int:
    if bool(args.cluster_id) == args.all:
        print("facesearch-client: give a CLUSTER_ID or --all", file=sys.stderr)
        return 2
    n = c.delete_unknown(args.cluster_id or "", all=args.all)
    print(f"{n} unknown face(s) deleted")
    return 0


def cmd_info(c: FaceSearchClient, args) -> int:
    r = c.info()
    source = {1: "configured", 2: "calibrated", 3: "built-in"}.get(r.default_max_distance_source, "")
    stale = f", calibration stale ({r.changes_since_calibration} faces changed)" if r.calibration_stale else ""
    _say(args, r, f"model {r.model_id} ({r.dimension}-d), {r.identity_count} identities, {r.face_count} faces, "
                   f"index {r.index_type}, default cutoff {r.default_max_distance:g} ({source}){stale}, "
                   f"version {r.version}")
    return 0


def describe_calibration(r, applied: bool) -> str:
    """One line for a CalibrateResponse, or the gallery's Calibration (facesearch-indexer calibrate)."""
    sample = f" (a sample of {r.faces} faces)" if r.sampled else ""
    return (f"max_distance {r.max_distance:.4f}{' (applied)' if applied else ''}: expected FPIR "
            f"{r.expected_fpir:.4f} (strangers accepted), FNIR {r.expected_fnir:.4f} (enrolled faces missed); "
            f"{r.identities} identities, {r.genuine_comparisons} genuine and {r.impostor_comparisons} impostor "
            f"comparisons{sample}")


def cmd_calibrate(c: FaceSearchClient, args) -> int:
    r = c.calibrate(target_fpir=args.target_fpir or 0.0, target_fnir=args.target_fnir or 0.0, apply=args.apply)
    _say(args, r, describe_calibration(r, r.applied))
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="facesearch-client",
                                     description="Talk to a running facesearch-server.")
    parser.add_argument("--server", default=os.environ.get("FACESEARCH_ADDRESS") or DEFAULT_TARGET,
                        help="host:port [FACESEARCH_ADDRESS, default %(default)s]")
    parser.add_argument("--token", default=os.environ.get("FACESEARCH_AUTH_TOKEN", ""),
                        help="bearer token [FACESEARCH_AUTH_TOKEN]")
    parser.add_argument("--tls", action="store_true", help="connect with TLS (system roots unless --ca-cert)")
    parser.add_argument("--ca-cert", help="PEM file to trust for TLS (e.g. a self-signed server certificate)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per call [%(default)s]")
    parser.add_argument("--json", action="store_true",
                        help="print JSON, one object per line, numbers as numbers, for scripts")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("identify", help="who is in these photos")
    p.add_argument("photos", nargs="+")
    p.add_argument("--top-k", type=int, default=1, help="identities per face [%(default)s]")
    p.add_argument("--max-distance", type=float, default=0.0, help="cutoff (0: the server's default)")
    p.add_argument("--cropped", action="store_true", help="the photos are face crops: skip detection")
    p.add_argument("--source", default="", help="e.g. a camera's name, kept with unknown faces by a server "
                                                "with --keep-unknown-days")
    p.set_defaults(run=cmd_identify)

    p = sub.add_parser("enroll", help="add photos of one person (created if new)")
    p.add_argument("identity_id")
    p.add_argument("photos", nargs="+")
    p.add_argument("--name", help="display name")
    p.add_argument("--cropped", action="store_true", help="the photos are face crops: skip detection")
    p.set_defaults(run=cmd_enroll)

    p = sub.add_parser("verify", help="is this photo that person (exit 0 on a match, 1 otherwise)")
    p.add_argument("identity_id")
    p.add_argument("photo")
    p.add_argument("--max-distance", type=float, default=0.0, help="cutoff (0: the server's default)")
    p.add_argument("--cropped", action="store_true")
    p.set_defaults(run=cmd_verify)

    p = sub.add_parser("list", help="every identity (or those matching --prefix)")
    p.add_argument("--page-size", type=int, default=100)
    p.add_argument("--prefix", default="", help="only identities whose id or display name starts with it "
                                                "(case-sensitive)")
    p.set_defaults(run=cmd_list)

    p = sub.add_parser("delete", help="delete an identity and all its faces")
    p.add_argument("identity_id")
    p.set_defaults(run=cmd_delete)

    sub.add_parser("info", help="model, counts and index of the server").set_defaults(run=cmd_info)

    # -- admin: fix enrolments (README "Managing identities") --
    p = sub.add_parser("rename", help="set an identity's display name and/or metadata", formatter_class=RAW,
                       description="Set an identity's display name (an empty NAME clears it) and/or its\n"
                                   "metadata. Its faces stay as they are.",
                       epilog='example:\n  facesearch-client rename chris_evans "Chris Evans" --metadata team=avengers')
    p.add_argument("identity_id")
    p.add_argument("name", nargs="?", help="the new display name (\"\" clears it; omit to keep it)")
    p.add_argument("--metadata", action="append", metavar="KEY=VALUE",
                   help="replace the metadata with these pairs (repeat the option for several)")
    p.add_argument("--clear-metadata", action="store_true", help="remove all metadata")
    p.set_defaults(run=cmd_rename)

    p = sub.add_parser("merge", help="move every face of some identities into another, and delete them",
                       formatter_class=RAW,
                       description="Move every face of the SOURCE identities to the --into identity and delete\n"
                                   "the sources, in one transaction. A face whose photo the target already has\n"
                                   "is dropped as a duplicate. The target keeps its display name and metadata.",
                       epilog="example:\n  facesearch-client merge chris_evans_2 cevans --into chris_evans")
    p.add_argument("sources", nargs="+", metavar="SOURCE", help="identity ids to merge away")
    p.add_argument("--into", required=True, metavar="TARGET", help="the identity that receives the faces")
    p.set_defaults(run=cmd_merge)

    p = sub.add_parser("move", help="move faces to another identity (fix a wrong enrolment)", formatter_class=RAW,
                       description="Move faces (ids from `faces`, or from enroll) to another identity in one\n"
                                   "transaction: all of them, or none if one does not exist. A face whose photo\n"
                                   "the target already has is dropped as a duplicate.",
                       epilog="example:\n  facesearch-client move 412 413 --to scarlett_johansson")
    p.add_argument("face_ids", nargs="+", metavar="FACE_ID")
    p.add_argument("--to", required=True, metavar="IDENTITY_ID", help="the identity that receives them")
    p.add_argument("--create", action="store_true", help="create that identity if it does not exist")
    p.set_defaults(run=cmd_move)

    p = sub.add_parser("faces", help="an identity's faces: id, box, score, crop stored, when, source",
                       formatter_class=RAW, description="An identity's faces, one a line, in enrolment order:\n"
                       "face id, box (x,y WxH), detection score, whether a crop is stored, created (UTC), source.",
                       epilog="example:\n  facesearch-client faces chris_evans")
    p.add_argument("identity_id")
    p.add_argument("--page-size", type=int, default=100)
    p.set_defaults(run=cmd_faces)

    p = sub.add_parser("face-image", help="save a face's stored crop as JPEG", formatter_class=RAW,
                       description="Save the aligned face crop the gallery stored at enrolment, as JPEG.\n"
                                   "A face enrolled as an embedding has none (NOT_FOUND).",
                       epilog="example:\n  facesearch-client face-image 412 -o face.jpg")
    p.add_argument("face_id")
    p.add_argument("-o", "--out", help="file to write (- for stdout) [face-FACE_ID.jpg]")
    p.set_defaults(run=cmd_face_image)

    # -- unknown faces (README "Unknown visitors"; the server's --keep-unknown-days) --
    p = sub.add_parser("unknown", help="clusters of the faces Identify answered as unknown", formatter_class=RAW,
                       description="Clusters of kept unknown faces, largest first, one a line: cluster id, size,\n"
                                   "first and last seen (UTC), sources, and up to 8 face ids (unknown-image).",
                       epilog="example:\n  facesearch-client unknown")
    p.add_argument("--page-size", type=int, default=100)
    p.set_defaults(run=cmd_unknown)

    p = sub.add_parser("unknown-image", help="save an unknown face's crop as JPEG")
    p.add_argument("face_id")
    p.add_argument("-o", "--out", help="file to write [unknown-FACE_ID.jpg]")
    p.set_defaults(run=cmd_unknown_image)

    p = sub.add_parser("unknown-enroll", help="enrol an unknown cluster as a person (created if new)",
                       formatter_class=RAW, epilog="example:\n  facesearch-client unknown-enroll 17 jane_doe --name "
                                                   "\"Jane Doe\"")
    p.add_argument("cluster_id")
    p.add_argument("identity_id")
    p.add_argument("--name", help="display name")
    p.set_defaults(run=cmd_unknown_enroll)

    p = sub.add_parser("unknown-delete", help="forget one unknown cluster, or --all unknown faces")
    p.add_argument("cluster_id", nargs="?")
    p.add_argument("--all", action="store_true", help="every unknown face")
    p.set_defaults(run=cmd_unknown_delete)

    p = sub.add_parser("calibrate", help="fit the default cutoff to the enrolled faces (docs/calibration.md)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--target-fnir", type=float, help="enrolled faces missed, at most (genuine side) [0.01]")
    g.add_argument("--target-fpir", type=float, help="strangers accepted, at most (impostor side)")
    p.add_argument("--apply", action="store_true", help="store it: max_distance 0 then uses it, on every replica")
    p.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print JSON")
    p.set_defaults(run=cmd_calibrate)

    args = parser.parse_args(argv)
    try:
        with FaceSearchClient(args.server, token=args.token or None, tls=args.tls, ca_cert=args.ca_cert,
                              timeout=args.timeout) as client:
            code = args.run(client, args)
            sys.stdout.flush()  # here, so that a closed pipe is caught below, not at exit
            return code
    except BrokenPipeError:
        # The reader went away (`... | head`): stop quietly, as a command killed by SIGPIPE would.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # the exit's flush goes nowhere
        return 141
    except grpc.RpcError as exc:
        print(f"facesearch-client: {exc.code().name}: {exc.details()}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"facesearch-client: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
