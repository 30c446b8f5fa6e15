"""facesearch-server: serves the FaceSearch gRPC API (DESIGN.md §2)."""

from facesearch.placeholder import placeholder_main


def main(argv=None) -> int:
    return placeholder_main("facesearch-server", "serves the FaceSearch gRPC API (DESIGN.md §2)", 3, argv)
