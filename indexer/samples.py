"""Enrol the bundled 5-celebrity sample gallery into an empty data directory (`make serve`).

    python -m facesearch.indexer.samples [--data-dir DIR]

Does nothing when the gallery already holds identities, so it runs once. The photos go
through the indexer's local add, i.e. the service's enrolment pipeline.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

from facesearch.embedder import Embedder, EmbedderConfig, FaceMode, WeightsCache
from facesearch.gallery import Gallery, GalleryConfig, GalleryError, GalleryLockedError
from facesearch.settings import add_flags
from facesearch.sources import Item, scan

from .add import Summary, add_local


def sample_items(cache_dir: Path) -> list[Item]:
    """The train photos, one identity per person, named as people write the name."""
    root = WeightsCache(cache_dir).sample_gallery() / "train"
    return [replace(item, display_name=item.identity_id.replace("_", " ").title()) for item in scan(root)
            if item.path.suffix.lower() == ".jpg"]


def enrol_samples(gallery: Gallery, embedder: Embedder, progress: bool = False) -> Summary:
    """Enrol the train photos, one face each."""
    return add_local(sample_items(embedder.config.cache_dir), gallery, embedder, FaceMode.DETECT, workers=0,
                     batch_size=64, progress=progress)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_flags(parser, GalleryConfig, only=["data_dir"])
    args = parser.parse_args(argv)
    config = GalleryConfig.from_args(args)
    try:
        with Gallery.open(config) as gallery:  # cheap check before loading the model, on any database
            if gallery.info().identity_count:
                print(f"{config.data_dir}: the gallery already holds identities; sample gallery not enrolled")
                return 0
    except GalleryLockedError:
        raise
    except GalleryError:
        pass  # a new gallery: it has no model yet, so it is opened below with the embedder's
    embedder = Embedder.load(EmbedderConfig.from_env())
    with Gallery.open(config, model_id=embedder.model_id, dimension=embedder.dimension) as gallery:
        if gallery.info().identity_count:
            print(f"{config.data_dir}: the gallery already holds identities; sample gallery not enrolled")
            return 0
        print(f"enrolling the 5-celebrity sample gallery into {config.data_dir}")
        summary = enrol_samples(gallery, embedder, progress=sys.stderr.isatty())
        print(f"done: {summary.added} faces of {summary.images} photos, {len(summary.rejected)} without a face")
    return 0


if __name__ == "__main__":
    sys.exit(main())
