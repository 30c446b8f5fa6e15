"""Gallery settings: one field per option, each a FACESEARCH_* variable (facesearch.settings)."""

from __future__ import annotations

from pathlib import Path

from facesearch.settings import Settings, UserPath, setting

from .index import IndexConfig


class GalleryConfig(Settings):
    """Where the gallery lives, and its vector index."""

    data_dir: UserPath = setting(Path("var"), "where the gallery lives: gallery.db, index snapshots, the lock",
                                 shown="./var")
    database_url: str = setting("", "SQLAlchemy URL of the gallery's database",
                                shown="sqlite:///<data dir>/gallery.db")
    index: IndexConfig = IndexConfig()   # from_env() and from_args() read its settings too

    @property
    def url(self) -> str:
        return self.database_url or f"sqlite:///{Path(self.data_dir).resolve() / 'gallery.db'}"
