"""Generate facesearch/v1/*_pb2*.py from proto/ with grpcio-tools (`make proto`).

    python -m facesearch.protogen [--out DIR]   # default: the package folder facesearch/
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PROTO_ROOT = REPO / "proto"
PROTOS = ["facesearch/v1/facesearch.proto"]


def generate(out: Path) -> list[Path]:
    """Run protoc in a child process: in a process that has loaded TensorFlow, grpc_tools'
    in-process protoc crashes (segmentation fault), as the test suite found."""
    import grpc_tools

    (out / "facesearch" / "v1").mkdir(parents=True, exist_ok=True)
    include = Path(grpc_tools.__file__).parent / "_proto"
    args = [sys.executable, "-m", "grpc_tools.protoc", f"-I{PROTO_ROOT}", f"-I{include}", f"--python_out={out}",
            f"--pyi_out={out}", f"--grpc_python_out={out}", *[str(PROTO_ROOT / p) for p in PROTOS]]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise RuntimeError(f"protoc failed: {proc.stderr.strip()}")
    return sorted((out / "facesearch" / "v1").glob("*_pb2*.py*"))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=REPO, help="folder that receives facesearch/v1/ (default: the repo)")
    args = parser.parse_args(argv)
    for path in generate(args.out):
        print(path.relative_to(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
