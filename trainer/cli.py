"""facesearch-trainer: triplet-loss fine-tuning of FaceNet, evaluation, calibration and export."""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from pathlib import Path

from facesearch.embedder import EmbedderConfig, EmbedderError, FaceMode
from facesearch.embedder.distances import max_distance_setting
from facesearch.settings import SettingError, Settings, add_flags

from .errors import TrainerError
from .network import DEFAULT_TRAINABLE_FROM
from .sampling import MININGS

EPILOG = """\
examples:
  facesearch-trainer train --data gallery/ --out models/ft1
  facesearch-trainer train --data ../shared/data/avengers --split ../shared/data/avengers/seed_split.json \\
      --face-mode cropped --out models/avengers
  FACESEARCH_MODEL=models/avengers facesearch-server       # serve the exported model
  facesearch-trainer evaluate --model models/avengers --data gallery/ --out eval/
  facesearch-trainer calibrate --model facenet-128 --data gallery/ --target-fpir 0.01

The data folder is laid out as <person>/<images>. Photos go through the detector
(--detector: MTCNN or YuNet) and the crops are cached under --cache-dir; --face-mode cropped takes each image as a crop.
Distances and cutoffs are on the service scale: 3 x squared L2 of unit embeddings.
"""


class ReportSettings(Settings):
    """The trainer's one setting: reports state acceptance at the service's cutoff (--cutoff)."""

    max_distance: float = max_distance_setting()


def _data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", type=Path, required=True, help="labelled images: <person>/<images>")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--split", type=Path, help="a split file: the seed's seed_split.json (train_name/test_name "
                                              "lists of file names) or {\"train\": [...], \"test\": [...]}")
    g.add_argument("--test-fraction", type=float, default=0.2,
                   help="held-out share per person when there is no --split [0.2]")
    p.add_argument("--seed", type=int, default=0, help="seeds the split, sampling, augmentation and dropout [0]")
    p.add_argument("--face-mode", choices=["detect", "cropped"], default="detect",
                   help="detect faces (photos, with --detector) or take each image as a face crop [detect]")
    add_flags(p, EmbedderConfig, only=["detector"])
    add_flags(p, ReportSettings, rename={"max_distance": "--cutoff"})
    p.add_argument("--target-fpir", type=float, default=0.01,
                   help="open-set false positive identification rate for the recommended cutoff [0.01]")
    p.add_argument("--cache-dir", type=Path, default=None,
                   help="face crops and base features [$FACESEARCH_CACHE_DIR/trainer]")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="facesearch-trainer", description=__doc__, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    t = sub.add_parser("train", help="fine-tune with triplet loss, evaluate before and after, export",
                       description="Fine-tune FaceNet with triplet loss (everything frozen below --trainable-from, "
                                   "BatchNorm statistics frozen), evaluate on the held-out split before and after, "
                                   "and export to --out: model.json, model.weights.h5, report.json and plots. "
                                   "Checkpoints each epoch; Ctrl-C saves one; --resume continues.")
    _data_args(t)
    t.add_argument("--out", type=Path, required=True, help="export folder; FACESEARCH_MODEL=OUT serves it")
    t.add_argument("--model", default="facenet-128", help="the model to start from [facenet-128]")
    t.add_argument("--model-id", help="id of the exported model [<base>-ft-<weights digest>]")
    t.add_argument("--epochs", type=int, default=20, help="[20]")
    t.add_argument("--batch-size", type=int, default=128,
                   help="triplets per step (random) or images per step (semi-hard, batch-hard) [128]")
    t.add_argument("--steps-per-epoch", type=int, help="[ceil(train images / batch size)]")
    t.add_argument("--margin", type=float, default=0.9, help="triplet margin on squared unit distances [0.9]")
    t.add_argument("--lr", type=float, default=1e-5, help="Adam learning rate [1e-5]")
    t.add_argument("--mining", choices=MININGS, default="random",
                   help="random: the seed's random triplets; semi-hard / batch-hard: online mining in batches "
                        "of P identities x K images [random]")
    t.add_argument("--images-per-identity", type=int, default=4, help="K for semi-hard and batch-hard [4]")
    t.add_argument("--trainable-from", default=DEFAULT_TRAINABLE_FROM,
                   help=f"first trainable block; everything below is frozen [{DEFAULT_TRAINABLE_FROM}]")
    t.add_argument("--augment-copies", type=int, default=4,
                   help="fixed copies per image for the feature cache: the image, then flipped/cropped/"
                        "brightened ones [4]")
    t.add_argument("--no-feature-cache", action="store_true",
                   help="run the frozen base every step, with fresh augmentation (much slower)")
    t.add_argument("--mixed-precision", action="store_true", help="float16 compute on a GPU")
    t.add_argument("--resume", action="store_true", help="continue the run checkpointed in --out")
    t.add_argument("--json", action="store_true", help="print the report as JSON")

    e = sub.add_parser("evaluate", help="report accuracy, distances, ROC and open-set figures of a model",
                       description="Evaluate a model (facenet-128, keras-facenet:<key> or an exported folder) on "
                                   "the held-out split: top-1 (one anchor per person, whole gallery), distance "
                                   "distributions, 10-fold verification accuracy, TAR at FAR, open-set FNIR at "
                                   "FPIR, and the best cutoff. Writes report.json and PNG plots to --out.")
    _data_args(e)
    add_flags(e, EmbedderConfig, only=["model"])
    e.add_argument("--out", type=Path, help="folder for report.json and plots [print only]")
    e.add_argument("--json", action="store_true", help="print the report as JSON")

    c = sub.add_parser("calibrate", help="print the max_distance that reaches a target open-set FPIR",
                       description="Print the recommended FACESEARCH_MAX_DISTANCE: the largest cutoff at which at "
                                   "most --target-fpir of probes of people left out of the gallery are accepted. "
                                   "With --target-fnir, what the server's Calibrate would answer with the train "
                                   "images enrolled (docs/calibration.md).")
    _data_args(c)
    c.add_argument("--target-fnir", type=float,
                   help="instead: the gallery estimate, at most this share of enrolled faces missed (genuine side)")
    add_flags(c, EmbedderConfig, only=["model"])
    return parser


def _cutoff(args) -> float:
    return ReportSettings.from_args(args).max_distance


def _model(args) -> str:
    """evaluate and calibrate: --model > FACESEARCH_MODEL > facenet-128."""
    return EmbedderConfig.from_args(args).model


def _common(args) -> dict:
    return dict(data=args.data, split=args.split, test_fraction=args.test_fraction, seed=args.seed,
                face_mode=FaceMode.CROPPED if args.face_mode == "cropped" else FaceMode.DETECT,
                cutoff=_cutoff(args), target_fpir=args.target_fpir, progress=not args.no_progress,
                detector=EmbedderConfig.from_args(args).detector,
                **({"target_fnir": args.target_fnir} if getattr(args, "target_fnir", None) else {}),
                **({"cache_dir": args.cache_dir} if args.cache_dir else {}))


def cmd_train(args) -> int:
    from .train import TrainConfig, run

    cfg = TrainConfig(out=args.out, model=args.model, model_id=args.model_id, epochs=args.epochs,
                      batch_size=args.batch_size, steps_per_epoch=args.steps_per_epoch, margin=args.margin,
                      lr=args.lr, mining=args.mining, images_per_identity=args.images_per_identity,
                      trainable_from=args.trainable_from, augment_copies=args.augment_copies,
                      feature_cache=not args.no_feature_cache, mixed_precision=args.mixed_precision,
                      resume=args.resume, **_common(args))
    try:
        doc = run(cfg)
    except KeyboardInterrupt:
        print(f"\ninterrupted: checkpoint saved in {args.out}/checkpoint; continue with --resume", file=sys.stderr)
        return 130
    if args.json:
        print(json.dumps({k: v for k, v in doc.items() if k not in ("history", "summary")}, default=str, indent=2))
    else:
        print("\n".join(doc["summary"]))
        print(f"\nexported {doc['model_id']} to {args.out} ({doc['steps']} steps, "
              f"{doc['timings'].get('steps_per_s', 0):.2f} steps/s on {doc['hardware']['device']})")
        print(f"serve it with: FACESEARCH_MODEL={args.out} facesearch-server")
    return 0


def cmd_evaluate(args) -> int:
    from . import report
    from .evaluate import EvalConfig, evaluate_model

    ev = evaluate_model(EvalConfig(model=_model(args), **_common(args)))
    if args.out:
        path = report.write(args.out, {"evaluation": ev}, {ev["model_id"]: ev}, _cutoff(args))
        print(f"wrote {path}", file=sys.stderr)
    if args.json:
        print(json.dumps(report.clean(ev), indent=2))
    else:
        print("\n".join(report.summary_lines({ev["model_id"][:12]: ev})))
    return 0


def cmd_calibrate(args) -> int:
    from .evaluate import EvalConfig, evaluate_model

    ev = evaluate_model(EvalConfig(model=_model(args), **_common(args)))
    if args.target_fnir:
        c = ev["gallery_calibration"]
        if "error" in c:
            raise TrainerError(c["error"])
        print(f"{math.floor(c['max_distance'] * 100) / 100:.2f}")
        print(f"FACESEARCH_MAX_DISTANCE={math.floor(c['max_distance'] * 100) / 100:.2f}: with the train images "
              f"enrolled, Calibrate(target_fnir={args.target_fnir:g}) expects FNIR {c['expected_fnir']:.4f} and FPIR "
              f"{c['expected_fpir']:.4f} ({c['genuine_comparisons']} genuine, {c['impostor_comparisons']} impostor "
              f"comparisons).", file=sys.stderr)
        return 0
    cutoff = ev["recommended_max_distance"]["max_distance"]
    n = ev["open_set"]["nonmated_probes"]
    if not math.isfinite(cutoff):
        raise TrainerError("no probes of left-out people to calibrate on; the split needs held-out images")
    print(f"{math.floor(cutoff * 100) / 100:.2f}")
    print(f"FACESEARCH_MAX_DISTANCE={math.floor(cutoff * 100) / 100:.2f} accepts at most {args.target_fpir:g} of "
          f"{n} probes of people not in the gallery (resolution {1 / max(n, 1):.3f}); at it, "
          f"{ev['open_set']['fnir_at_fpir'].get(str(args.target_fpir), {}).get('fnir', float('nan')):.1%} "
          f"of enrolled people's probes are missed or misidentified.", file=sys.stderr)
    return 0


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return {"train": cmd_train, "evaluate": cmd_evaluate, "calibrate": cmd_calibrate}[args.command](args)
    except (TrainerError, EmbedderError, SettingError) as exc:
        print(f"facesearch-trainer: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
