"""facesearch.indexer: facesearch-indexer, bulk ingestion of gallery folders and manifests."""
