"""Build-time check of the GPU image's venv: the GPU packages are in, the CPU builds are out.

    python docker/check_gpu_install.py     # exit 0 and print the versions, or exit 1 and say what is wrong

tensorflow-cpu and tensorflow, faiss-cpu and faiss-gpu install the same modules; whichever was
installed last wins file by file, so the CPU ones must not be there at all. No GPU is needed.
"""

from __future__ import annotations

import sys
from importlib import metadata

NEEDED = ("facesearch", "tensorflow", "faiss-gpu", "nvidia-cudnn-cu12", "nvidia-cublas-cu12")
UNWANTED = ("tensorflow-cpu", "faiss-cpu")


def version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def main() -> int:
    problems = [f"{n} is missing" for n in NEEDED if version(n) is None]
    problems += [f"{n} {version(n)} is installed and would shadow the GPU build" for n in UNWANTED if version(n)]
    if problems:
        print("GPU install check failed: " + "; ".join(problems), file=sys.stderr)
        return 1
    import tensorflow  # importing works without a GPU; it only logs that none is visible

    print(f"GPU install ok: tensorflow {tensorflow.__version__}, faiss-gpu {version('faiss-gpu')}, "
          f"cudnn {version('nvidia-cudnn-cu12')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
