"""The --help of a console script whose component is not built yet."""

from __future__ import annotations

import argparse
import sys


def placeholder_main(prog: str, what: str, issue: int, argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog=prog,
        description=f"{prog}: {what}.",
        epilog=f"Not built yet: this command arrives with issue {issue}. "
               "Today only the embedder works: python -m facesearch.embedder --help",
    )
    parser.parse_args(argv)
    print(f"{prog} is not built yet (issue {issue}); see --help.", file=sys.stderr)
    return 2
