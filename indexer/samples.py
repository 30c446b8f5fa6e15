"""Enrol the bundled 5-celebrity sample gallery into an empty data directory (`make serve`).

    python -m facesearch.indexer.samples [--data-dir DIR]

Does nothing when the gallery already holds identities, so it runs once.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

from facesearch.embedder import Embedder, EmbedderConfig, WeightsCache, decode, primary_face
from facesearch.embedder.images import encode_jpeg
from facesearch.gallery import Enrolment, Gallery, GalleryConfig, NewFace
from facesearch.settings import add_flags


def enrol_samples(gallery: Gallery, embedder: Embedder, out=sys.stdout) -> int:
    """Enrol the train photos, one face each; returns the number of faces added."""
    root = WeightsCache(embedder.config.cache_dir).sample_gallery() / "train"
    enrolments = []
    for person_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        photos = sorted(person_dir.glob("*.jpg"))
        images = [decode(p.read_bytes()) for p in photos]
        picked = [(p, primary_face(found, img.shape)) for p, img, found in
                  zip(photos, images, embedder.find_faces_many(images))]
        picked = [(p, f) for p, f in picked if f is not None]
        vectors = embedder.embed_crops([f.crop for _, f in picked])
        faces = [NewFace(v, source_sha256=hashlib.sha256(p.read_bytes()).hexdigest(), source_path=str(p),
                         box=(f.box.x, f.box.y, f.box.width, f.box.height), detection_score=f.score,
                         crop_jpeg=encode_jpeg(f.crop)) for (p, f), v in zip(picked, vectors)]
        name = person_dir.name.replace("_", " ").title()
        enrolments.append(Enrolment(person_dir.name, faces, name))
        print(f"  {person_dir.name}: {len(faces)} of {len(photos)} photos", file=out)
    gallery.add_batch(enrolments, model_id=embedder.model_id)
    return sum(len(e.faces) for e in enrolments)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_flags(parser, GalleryConfig, only=["data_dir"])
    args = parser.parse_args(argv)
    config = GalleryConfig.from_args(args)
    if not config.database_url and (Path(config.data_dir) / "gallery.db").exists():
        with Gallery.open(config) as gallery:  # cheap check before loading the model
            if gallery.info().identity_count:
                print(f"{config.data_dir}: the gallery already holds identities; sample gallery not enrolled")
                return 0
    embedder = Embedder.load(EmbedderConfig.from_env())
    with Gallery.open(config, model_id=embedder.model_id, dimension=embedder.dimension) as gallery:
        if gallery.info().identity_count:
            print(f"{config.data_dir}: the gallery already holds identities; sample gallery not enrolled")
            return 0
        print(f"enrolling the 5-celebrity sample gallery into {config.data_dir}")
        print(f"done: {enrol_samples(gallery, embedder)} faces")
    return 0


if __name__ == "__main__":
    sys.exit(main())
