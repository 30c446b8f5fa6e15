"""Indexer throughput against the raw pipeline it wraps, in the same run.

    .venv/bin/python -m bench.indexer [--workers 1]

crops:  `add --face-mode cropped` on the Avengers crops (../shared; else 5-celebrity crops
        made here) against raw decode + embed_crops at batch 64.
photos: `add` (detect) on the 5-celebrity train photos against raw decode + MTCNN +
        embed_crops, one process. Writes bench/results/indexer.json.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from bench import common

from facesearch.embedder import Embedder, FaceMode, WeightsCache, decode, primary_face
from facesearch.gallery import Gallery, GalleryConfig
from facesearch.indexer.add import add_local
from facesearch.sources import scan


def raw_crops(embedder: Embedder, paths: list[Path]) -> float:
    start = time.perf_counter()
    for i in range(0, len(paths), 64):
        embedder.embed_crops([decode(p.read_bytes()) for p in paths[i:i + 64]])
    return len(paths) / (time.perf_counter() - start)


def raw_photos(embedder: Embedder, paths: list[Path]) -> float:
    start = time.perf_counter()
    crops = []
    for p in paths:
        rgb = decode(p.read_bytes())
        face = primary_face(embedder.find_faces(rgb), rgb.shape)
        if face is not None:
            crops.append(face.crop)
        if len(crops) == 64:
            embedder.embed_crops(crops)
            crops = []
    embedder.embed_crops(crops)
    return len(paths) / (time.perf_counter() - start)


def indexed(embedder: Embedder, gallery_dir: Path, mode: FaceMode, workers: int) -> tuple[float, dict]:
    with tempfile.TemporaryDirectory() as tmp, \
            Gallery.open(GalleryConfig(data_dir=tmp), model_id=embedder.model_id, dimension=128) as g:
        summary = add_local(scan(gallery_dir), g, embedder, mode, workers=workers, batch_size=64, progress=False)
    return summary.images / summary.seconds, summary.as_dict()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=1, help="detection processes for the photo run")
    args = parser.parse_args()
    embedder = Embedder.load()
    embedder.warmup((1, 2, 4, 8, 16, 32, 64))
    photos_dir = WeightsCache(embedder.config.cache_dir).sample_gallery() / "train"
    tmp = Path(tempfile.mkdtemp())
    try:
        crops_dir = common.AVENGERS if common.AVENGERS.is_dir() else tmp / "crops"
        if crops_dir != common.AVENGERS:  # make crops from the sample photos
            from facesearch.embedder.images import encode_jpeg

            for p, crop in common.face_crops(embedder, sorted(photos_dir.glob("*/*.jpg"))):
                (crops_dir / p.parent.name).mkdir(parents=True, exist_ok=True)
                (crops_dir / p.parent.name / (p.stem + ".jpg")).write_bytes(encode_jpeg(crop))
        crop_paths = [i.path for i in scan(crops_dir)]
        photo_paths = [i.path for i in scan(photos_dir)]
        raw_c = raw_crops(embedder, crop_paths)
        idx_c, sum_c = indexed(embedder, crops_dir, FaceMode.CROPPED, workers=0)
        raw_p = raw_photos(embedder, photo_paths)
        idx_p, sum_p = indexed(embedder, photos_dir, FaceMode.DETECT, workers=args.workers)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"crops  ({len(crop_paths)}): indexer {idx_c:.1f} images/s, raw decode+embed {raw_c:.1f}/s, "
          f"ratio {idx_c / raw_c:.2f}")
    print(f"photos ({len(photo_paths)}): indexer {idx_p:.1f} images/s (workers={args.workers}), raw decode+detect+embed "
          f"{raw_p:.1f}/s, ratio {idx_p / raw_p:.2f}")
    common.write("indexer", {
        "crops": {"images": len(crop_paths), "indexer_per_s": idx_c, "raw_per_s": raw_c, "ratio": idx_c / raw_c,
                  "summary": {k: v for k, v in sum_c.items() if k != "rejections"}},
        "photos": {"images": len(photo_paths), "workers": args.workers, "indexer_per_s": idx_p, "raw_per_s": raw_p,
                   "ratio": idx_p / raw_p, "summary": {k: v for k, v in sum_p.items() if k != "rejections"}},
    })


if __name__ == "__main__":
    main()
