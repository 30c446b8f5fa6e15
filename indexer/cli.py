"""facesearch-indexer: bulk add, stats, delete and reindex of gallery folders."""

from facesearch.placeholder import placeholder_main


def main(argv=None) -> int:
    return placeholder_main("facesearch-indexer", "bulk add, stats, delete and reindex of gallery folders", 4, argv)
