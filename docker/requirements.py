"""Print facesearch's dependencies from pyproject.toml, one per line, for a cached image layer.

    python docker/requirements.py        > req.txt   # [project.dependencies]
    python docker/requirements.py --gpu  > req.txt   # the same with the `gpu` extra in place of
                                                     # tensorflow-cpu and faiss-cpu (README "GPU")
    python docker/requirements.py --milvus > req.txt  # with the `milvus` extra (pymilvus)

`make lock` resolves requirements/gpu.lock from `--gpu --milvus` (written to requirements/gpu.in);
the GPU image installs that lock, then the project itself with --no-deps. There pymilvus comes without
Milvus Lite: milvus-lite depends on faiss-cpu, which would shadow faiss-gpu (the GPU image talks to a
Milvus server, FACESEARCH_MILVUS_URI=http://...).
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

CPU_ONLY = {"tensorflow-cpu", "faiss-cpu"}  # the gpu extra provides the same modules


def name(requirement: str) -> str:
    return re.split(r"[\s\[<>=!~;@]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def requirements(pyproject: Path, gpu: bool = False, milvus: bool = False) -> list[str]:
    project = tomllib.loads(pyproject.read_text())["project"]
    deps = list(project["dependencies"])
    if gpu:
        deps = [d for d in deps if name(d) not in CPU_ONLY] + list(project["optional-dependencies"]["gpu"])
    if milvus:   # pymilvus for FACESEARCH_VECTOR_BACKEND=milvus (the compose `scale` profile)
        extra = list(project["optional-dependencies"]["milvus"])
        deps += [re.sub(r"\[milvus_lite\]", "", d) for d in extra] if gpu else extra
    return deps


def main(argv: list[str]) -> int:
    gpu, milvus = "--gpu" in argv, "--milvus" in argv
    paths = [a for a in argv if a not in ("--gpu", "--milvus")]
    pyproject = Path(paths[0]) if paths else Path("pyproject.toml")
    print("\n".join(requirements(pyproject, gpu, milvus)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
