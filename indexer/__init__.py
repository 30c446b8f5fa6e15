"""facesearch.indexer: bulk add, stats, delete and reindex of gallery folders. Not built yet (issue 4)."""
