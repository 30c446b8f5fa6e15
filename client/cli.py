"""facesearch-client: identify, enroll, verify, list, delete and info against a running server."""

from facesearch.placeholder import placeholder_main


def main(argv=None) -> int:
    return placeholder_main("facesearch-client", "identify, enroll, verify, list, delete and info against a running server", 3, argv)
