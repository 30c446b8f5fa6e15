"""Gallery settings, each with a FACESEARCH_* environment variable."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from facesearch import settings

from .index import INDEX_TYPES, VECTOR_BACKENDS, IndexConfig


@dataclass(frozen=True)
class GalleryConfig:
    data_dir: Path = field(default_factory=settings.data_dir)   # FACESEARCH_DATA_DIR [./var]
    database_url: str = ""                                      # FACESEARCH_DATABASE_URL [sqlite:///<data_dir>/gallery.db]
    index: IndexConfig = IndexConfig()
    vector_backend: str = "faiss"                               # FACESEARCH_VECTOR_BACKEND: faiss or milvus
    milvus_uri: str = ""                                        # FACESEARCH_MILVUS_URI [<data_dir>/milvus.db: Milvus Lite]
    milvus_token: str = ""                                      # FACESEARCH_MILVUS_TOKEN
    milvus_collection: str = "facesearch_faces"                 # FACESEARCH_MILVUS_COLLECTION

    @property
    def milvus(self) -> str:
        """A file path runs Milvus Lite in-process; http://host:19530 talks to a Milvus server."""
        return self.milvus_uri or str(Path(self.data_dir).resolve() / "milvus.db")

    @property
    def url(self) -> str:
        return self.database_url or f"sqlite:///{Path(self.data_dir).resolve() / 'gallery.db'}"

    @classmethod
    def from_env(cls, **overrides) -> "GalleryConfig":
        kind = settings.env_str("index", "flat")
        if kind not in INDEX_TYPES:
            raise settings.SettingError(f"{settings.env_name('index')}={kind!r}: choose one of {', '.join(INDEX_TYPES)}")
        index = IndexConfig(
            kind=kind,
            ivf_nlist=settings.env_int("ivf_nlist", 0, minimum=0),
            ivf_nprobe=settings.env_int("ivf_nprobe", 16, minimum=1),
            ivf_train_size=settings.env_int("ivf_train_size", 20_000, minimum=1000),
            hnsw_m=settings.env_int("hnsw_m", 32, minimum=4),
            hnsw_ef_search=settings.env_int("hnsw_ef_search", 128, minimum=1),
            use_gpu=settings.env_str("faiss_gpu", "1") not in ("0", "false", "no"),
        )
        backend = settings.env_str("vector_backend", "faiss")
        if backend not in VECTOR_BACKENDS:
            raise settings.SettingError(
                f"{settings.env_name('vector_backend')}={backend!r}: choose one of {', '.join(VECTOR_BACKENDS)}")
        values = dict(data_dir=settings.data_dir(), database_url=settings.env_str("database_url", ""), index=index,
                      vector_backend=backend, milvus_uri=settings.env_str("milvus_uri", ""),
                      milvus_token=settings.env_str("milvus_token", ""),
                      milvus_collection=settings.env_str("milvus_collection", "facesearch_faces"))
        values.update(overrides)
        return cls(**values)
