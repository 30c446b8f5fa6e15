"""Gallery settings: one field per option, each a FACESEARCH_* variable (facesearch.settings)."""

from __future__ import annotations

from pathlib import Path

from facesearch.settings import Settings, UserPath, setting

from .index import IndexConfig, VectorBackend


class GalleryConfig(Settings):
    """Where the gallery lives: its SQL database and its vector index."""

    data_dir: UserPath = setting(Path("var"), "where the gallery lives: gallery.db, index snapshots, the lock",
                                 shown="./var")
    database_url: str = setting("", "SQLAlchemy URL of the gallery's database (postgresql+psycopg://... for "
                                "PostgreSQL)", shown="sqlite:///<data dir>/gallery.db", repr=False)  # a password
    vector_backend: VectorBackend = setting("faiss", "vector index engine: faiss (in-process) or milvus")
    milvus_uri: str = setting("", "a file path runs Milvus Lite in-process; http://host:19530 a Milvus server",
                              shown="<data dir>/milvus.db")
    milvus_token: str = setting("", "Milvus token (user:password or an API key)", shown="(empty)", repr=False)
    milvus_timeout_s: float = setting(30.0, "longest one Milvus call may take; past it (or with the server down) "
                                      "the request fails as UNAVAILABLE", gt=0)
    milvus_collection: str = setting("", "Milvus collection holding the faces; after the N-th reindex _gN is "
                                     "appended (to a name set here too)", shown="facesearch_<model id>[_g<generation>]")
    index: IndexConfig = IndexConfig()   # from_env() and from_args() read its settings too

    @property
    def url(self) -> str:
        return self.database_url or f"sqlite:///{Path(self.data_dir).resolve() / 'gallery.db'}"

    @property
    def milvus(self) -> str:
        """A file path runs Milvus Lite in-process; http://host:19530 talks to a Milvus server."""
        return self.milvus_uri or str(Path(self.data_dir).resolve() / "milvus.db")
