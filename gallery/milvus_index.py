"""MilvusIndex: a durable vector index in a Milvus collection (Milvus Lite or a server).

FACESEARCH_MILVUS_URI picks the engine: a file path runs Milvus Lite in this process
(the default, <data_dir>/milvus.db), http://host:19530 a Milvus server. The collection
(config.milvus_collection: build_index names it after the gallery's model id and reindex
generation, milvus_names.py) holds (id, vector) with the faces' SQL ids as primary
keys and an L2 index of FACESEARCH_INDEX's kind (FLAT, IVF_FLAT or HNSW).

Read-your-writes across replicas at about Session cost: after each write the index
takes a fresh timestamp from Milvus's oracle (AllocTimestamp), which the Gallery keeps in
SQL with the write (sql.raise_index_ts). Before a search the Gallery passes the newest one
committed (read_after), and the search runs at that guarantee timestamp: Milvus answers
at once when it has applied every write up to it, and waits only when a write that new is
still in flight. Strong would instead wait on every search for a timestamp newer than any
write (a whole time tick, about 200 ms on a 2.3 server). pymilvus's MilvusClient returns no
mutation timestamp (upsert drops it; Milvus 2.3.5 answers a delete with timestamp 0), so the
timestamp comes from AllocTimestamp, which is later than the write it follows.

Durable: the Gallery writes no snapshot of it; at open it reconciles the collection
with SQL. Distances are squared L2, as FAISS gives them.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from typing import TYPE_CHECKING, Iterator, Literal
from urllib.parse import urlsplit, urlunsplit

import numpy as np
from pymilvus import DataType, MilvusClient

from .errors import GalleryError, IndexUnavailableError

if TYPE_CHECKING:
    from .config import GalleryConfig

log = logging.getLogger(__name__)


def redacted(uri: str) -> str:
    """The URI without user and password (http://user:pw@host:19530 -> http://host:19530)."""
    parts = urlsplit(uri)
    if parts.username is None and parts.password is None:
        return uri
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))

KINDS = {"flat": "FLAT", "ivf": "IVF_FLAT", "hnsw": "HNSW"}
MAX_LIMIT = 16_384      # Milvus's largest top-k
INSERT_CHUNK = 5_000
ID_CHUNK = 1_000


class MilvusIndex:
    """A DurableIndex (index.py) in one Milvus collection."""

    durable: Literal[True] = True
    # Customized: the search waits for guarantee_timestamp, the newest write this process knows of
    # (its own, or another replica's read from SQL), not for "now" as Strong does (see above).
    consistency = "Customized"

    def __init__(self, dimension: int, config: GalleryConfig) -> None:
        self.dimension = dimension
        self.config = config.index
        if not config.milvus_collection:
            raise GalleryError("no Milvus collection named (build_index names it after the model)")
        self.collection = config.milvus_collection
        self.uri = config.milvus
        self.timeout = config.milvus_timeout_s   # per call: an unreachable server is an error, not a hang
        self.opened_existing = False   # True: the collection was there already (reindex drops it)
        self.write_ts = 0   # a Milvus timestamp no older than this client's last write
        self.read_ts = 1    # the newest committed write any replica made, as the Gallery last read it
        try:
            self.client = MilvusClient(uri=self.uri, token=config.milvus_token, timeout=self.timeout)
        except Exception as exc:
            raise IndexUnavailableError(f"cannot reach Milvus at {redacted(self.uri)}: {exc}",
                                        "the vector index (Milvus) cannot be reached") from None
        with self._reaching("open the collection"):
            self._open_collection()
            self._count = self._stored_count()

    def _open_collection(self) -> None:
        c = self.client
        if c.has_collection(self.collection):
            field = next(f for f in c.describe_collection(self.collection)["fields"] if f["name"] == "vector")
            have = int(field["params"]["dim"])
            if have == self.dimension:
                c.load_collection(self.collection)
                self.opened_existing = True
                return
            log.warning("Milvus collection %s holds %d-d vectors, not %d; recreating it (SQL is the truth)",
                        self.collection, have, self.dimension)
            c.drop_collection(self.collection)
        schema = c.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=self.dimension)
        params = c.prepare_index_params()
        kind, cfg = KINDS[self.config.kind], self.config
        extra = {"nlist": cfg.ivf_nlist or 128} if kind == "IVF_FLAT" else \
            {"M": cfg.hnsw_m, "efConstruction": cfg.hnsw_ef_construction} if kind == "HNSW" else {}
        params.add_index(field_name="vector", index_type=kind, metric_type="L2", params=extra)
        c.create_collection(self.collection, schema=schema, index_params=params, consistency_level="Strong")

    def _stored_count(self) -> int:
        rows = self.client.query(self.collection, filter="", output_fields=["count(*)"], consistency_level="Strong")
        return int(rows[0]["count(*)"])

    @property
    def description(self) -> str:
        return f"milvus {KINDS[self.config.kind]}"

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        ids = np.asarray(ids, np.int64)
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.shape[1:] != (self.dimension,) or len(ids) != len(vectors):
            raise ValueError(f"vectors have shape {vectors.shape}, expected ({len(ids)}, {self.dimension})")
        with self._reaching("add faces"):
            for i in range(0, len(ids), INSERT_CHUNK):
                rows = [{"id": int(k), "vector": v.tolist()}
                        for k, v in zip(ids[i:i + INSERT_CHUNK], vectors[i:i + INSERT_CHUNK])]
                self.client.upsert(self.collection, rows, timeout=self.timeout)   # a replayed add is no duplicate
            self._stamp()
        self._count += len(ids)   # new ids but for a replay: no Strong count query (~0.3 s) per write

    def remove(self, ids: np.ndarray) -> int:
        wanted = [int(i) for i in np.asarray(ids, np.int64)]
        gone = 0
        with self._reaching("remove faces"):
            for i in range(0, len(wanted), ID_CHUNK):
                present = [r["id"] for r in self.client.get(self.collection, ids=wanted[i:i + ID_CHUNK],
                                                            output_fields=["id"], timeout=self.timeout)]
                if present:
                    self.client.delete(self.collection, ids=present, timeout=self.timeout)
                    gone += len(present)
            if gone:
                self._stamp()
        self._count -= gone
        return gone

    def _stamp(self) -> None:
        """Take a timestamp later than the write just made (the handler's AllocTimestamp: MilvusClient
        has no public call for it). 0 where the server lacks the call: searches then go Strong."""
        ts = self.client._get_connection().alloc_timestamp(timeout=self.timeout)
        self.write_ts = max(self.write_ts, int(ts or 0))
        if not ts:
            self.consistency = "Strong"

    def read_after(self, ts: int) -> None:
        """Searches from now on see every write stamped up to ts (the newest one committed, from SQL)."""
        if ts > self.read_ts:
            self.read_ts = ts

    @contextmanager
    def _reaching(self, what: str) -> Iterator[None]:
        """Any failure of the server (down, timed out, refusing) as IndexUnavailableError naming the URI."""
        try:
            yield
        except (KeyError, ValueError, GalleryError):
            raise
        except Exception as exc:
            raise IndexUnavailableError(f"Milvus at {redacted(self.uri)} is unavailable (could not {what}): "
                                        f"{getattr(exc, 'message', None) or exc}",
                                        f"the vector index (Milvus) is unavailable (could not {what})") from None

    def probe(self) -> None:
        """A cheap call that raises IndexUnavailableError while the server cannot be reached or the
        collection is gone (has_collection answers False for that: it does not raise)."""
        with self._reaching("reach the collection"):
            present = self.client.has_collection(self.collection, timeout=self.timeout)
        if not present:
            raise IndexUnavailableError(f"the Milvus collection {self.collection} at {self.uri} is gone")

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        n, k = len(queries), max(int(k), 0)
        dist = np.full((n, k), np.inf, np.float32)
        ids = np.full((n, k), -1, np.int64)
        if n == 0 or k == 0:   # not self._count: other replicas add to a shared collection
            return dist, ids
        limit = min(k, MAX_LIMIT)
        params = {"metric_type": "L2", "params": {"nprobe": self.config.ivf_nprobe,
                                                  "ef": max(self.config.hnsw_ef_search, limit)}}
        at = {"guarantee_timestamp": max(self.read_ts, self.write_ts)} if self.consistency == "Customized" else {}
        with self._reaching("search"):
            hits = self.client.search(self.collection, data=queries.tolist(), limit=limit, search_params=params,
                                      output_fields=[], consistency_level=self.consistency, timeout=self.timeout,
                                      **at)
        for row, found in enumerate(hits):
            for col, hit in enumerate(found):
                ids[row, col], dist[row, col] = hit["id"], hit["distance"]
        return dist, ids

    def ids(self) -> np.ndarray:
        out: list[int] = []
        with self._reaching("list the indexed ids"):
            it = self.client.query_iterator(self.collection, batch_size=10_000, filter="", output_fields=["id"],
                                            consistency_level="Strong", timeout=self.timeout)
            try:
                while batch := it.next():
                    out.extend(r["id"] for r in batch)
            finally:
                it.close()
        self._count = len(out)
        return np.sort(np.array(out, np.int64))

    def vectors(self, ids: np.ndarray) -> np.ndarray:
        wanted = [int(i) for i in np.asarray(ids, np.int64)]
        got = {}
        with self._reaching("read vectors"):
            for i in range(0, len(wanted), ID_CHUNK):
                for r in self.client.get(self.collection, ids=wanted[i:i + ID_CHUNK], output_fields=["vector"],
                                         timeout=self.timeout):
                    got[int(r["id"])] = np.asarray(r["vector"], np.float32)
        missing = [i for i in wanted if i not in got]
        if missing:
            raise KeyError(f"face {missing[0]} is not in the index")
        return np.stack([got[i] for i in wanted]) if wanted else np.zeros((0, self.dimension), np.float32)

    def __len__(self) -> int:
        """The faces this process counted (at open, reconcile, and its own writes since)."""
        return self._count

    def drop(self) -> None:
        """Delete the collection, then close."""
        try:
            self.client.drop_collection(self.collection)
        finally:
            self.close()

    def close(self) -> None:
        self.client.close()
