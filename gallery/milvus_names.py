"""The Milvus collection that holds a gallery's vectors: named after its model and generation.

Each reindex bumps the generation, so it fills a collection of a new name beside the one in
use and switches by committing the generation (reindex.py). No pymilvus here: the name is
checked before anything connects to Milvus.
"""

from __future__ import annotations

import hashlib
import re

from .errors import GalleryError

MAX_LENGTH = 255   # Milvus's limit on a collection name
PREFIX = "facesearch_"
VALID = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def collection_name(configured: str, model_id: str, generation: int) -> str:
    """The collection of a gallery with this model id and reindex generation.

    configured: FACESEARCH_MILVUS_COLLECTION. Empty (the default): facesearch_<model id>, the id
    lower-cased with every character outside [a-z0-9_] turned into "_". Set: that name, as given.
    Either way "_g<generation>" follows once the gallery has been reindexed (generation > 0), and a
    name over Milvus's 255 characters is cut, with a hash of the whole name so cut names differ.
    """
    if configured:
        if len(configured) > MAX_LENGTH or not VALID.fullmatch(configured):
            raise GalleryError(f"FACESEARCH_MILVUS_COLLECTION={configured!r} is not a Milvus collection name: "
                               f"up to {MAX_LENGTH} letters, digits and underscores, not starting with a digit")
        base = configured
    elif model_id:
        base = PREFIX + re.sub(r"[^a-z0-9_]", "_", model_id.lower())
    else:
        raise GalleryError("the Milvus collection is named after the gallery's model id, and none was given")
    suffix = f"_g{generation}" if generation > 0 else ""
    name = base + suffix
    if len(name) <= MAX_LENGTH:
        return name
    digest = hashlib.sha256((configured or model_id).encode()).hexdigest()[:8]
    return base[:MAX_LENGTH - len(suffix) - 9] + "_" + digest + suffix
