"""Deployment files (docker/, docker-compose.yml, .dockerignore) and the probe's address rules.

No Docker engine is needed: the compose file and the Dockerfiles are parsed and checked against
the code (console scripts, modules, FACESEARCH_* settings, package folders). The probe itself runs
as a subprocess in tests/e2e/test_probe.py.
"""

from __future__ import annotations

import fnmatch
import importlib.util
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from tests.helpers import REPO

COMPOSE = REPO / "docker-compose.yml"
DOCKERFILES = [REPO / "docker" / "Dockerfile", REPO / "docker" / "Dockerfile.gpu"]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
SCRIPTS = set(PYPROJECT["project"]["scripts"])
PACKAGE_DIRS = PYPROJECT["tool"]["setuptools"]["package-dir"]
INTERPOLATION = re.compile(r"\$\{(\w+)(?::?-([^}]*))?\}")
SETTING = re.compile(r"\bFACESEARCH_[A-Z0-9_]+\b")

SCALE = ["etcd", "minio", "milvus", "postgres", "facesearch-1", "facesearch-2", "lb"]
REPLICAS = ["facesearch-1", "facesearch-2"]
EXPECTED_PROFILES = {"server": [], "server-gpu": ["gpu"], "indexer": ["tools"], "trainer": ["gpu"],
                     "prometheus": ["monitoring"], **{name: ["scale"] for name in SCALE}}


# -- helpers ----------------------------------------------------------------------------------------
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())  # resolves the x-* anchors and << merges


def interpolate(text: str) -> str:
    """${VAR:-default} -> default, as compose does with VAR unset."""
    return INTERPOLATION.sub(lambda m: m.group(2) or "", text)


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined; comments and heredocs are not used."""
    out, pending = [], ""
    for line in dockerfile.read_text().splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.lstrip().startswith("#"):  # a comment inside a continued instruction
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        joined = (pending + line).strip()
        pending = ""
        keyword, _, rest = joined.partition(" ")
        out.append((keyword.upper(), rest.strip()))
    return out


def stages(dockerfile: Path) -> list[list[tuple[str, str]]]:
    result: list[list[tuple[str, str]]] = []
    for keyword, rest in instructions(dockerfile):
        if keyword == "FROM":
            result.append([])
        result[-1].append((keyword, rest))
    return result


def exec_form(args: str) -> list[str]:
    import json

    return json.loads(args)


def env_pairs(stage) -> dict[str, str]:
    env = {}
    for keyword, rest in stage:
        if keyword == "ENV":
            for pair in rest.split():
                key, _, value = pair.partition("=")
                env[key] = value
    return env


def dockerignore_patterns() -> list[str]:
    lines = (REPO / ".dockerignore").read_text().splitlines()
    return [ln.strip().rstrip("/") for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]


def ignored(path: str, patterns: list[str]) -> bool:
    parts = Path(path).parts
    for i in range(1, len(parts) + 1):
        prefix = "/".join(parts[:i])
        for pattern in patterns:
            assert not pattern.startswith("!"), "the matcher here does not handle exceptions"
            bare = pattern[3:] if pattern.startswith("**/") else None
            if fnmatch.fnmatchcase(prefix, pattern) or (bare and fnmatch.fnmatchcase(parts[i - 1], bare)):
                return True
    return False


def settings_classes() -> list[type]:
    """Every settings class: the one source of FACESEARCH_* variables (facesearch.settings)."""
    import facesearch.server.config  # noqa: F401  the server's classes: embedder, gallery, index, server
    import facesearch.trainer.cli  # noqa: F401  the trainer's ReportSettings
    from facesearch.settings import Settings

    found, todo = [], list(Settings.__subclasses__())
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return found


def real_settings() -> set[str]:
    """Every FACESEARCH_* variable, read from the settings classes' fields."""
    from facesearch.settings import env_var

    return {env_var(cls, name) for cls in settings_classes() for name in cls.setting_names()}


def check_command(argv: list[str], where: str) -> None:
    assert argv, f"{where}: empty command"
    if argv[0] in ("python", "python3", "/opt/venv/bin/python"):
        assert argv[1] == "-m" and argv[2].startswith("facesearch."), f"{where}: {argv}"
        assert importlib.util.find_spec(argv[2]) is not None, f"{where}: no module {argv[2]}"
    else:
        assert argv[0] in SCRIPTS, f"{where}: {argv[0]!r} is not a console script in pyproject.toml"


# -- compose ----------------------------------------------------------------------------------------
def test_compose_services_and_profiles():
    services = compose()["services"]
    assert set(services) == set(EXPECTED_PROFILES)
    for name, profiles in EXPECTED_PROFILES.items():
        assert services[name].get("profiles", []) == profiles, name
    # `docker compose up` with no profile starts the server only
    assert [n for n, s in services.items() if not s.get("profiles")] == ["server"]


def test_compose_builds_and_mounted_files_exist():
    doc = compose()
    for name, service in doc["services"].items():
        build = service.get("build")
        if build:
            context = REPO / build["context"]
            assert context.is_dir(), name
            assert (context / build["dockerfile"]).is_file(), name
        for volume in service.get("volumes", []):
            source, target = interpolate(volume).split(":")[:2]
            if source.startswith((".", "/")):
                path = (REPO / source).resolve()
                if target == "/gallery":
                    # operator photos, not part of the repo; must not be a source folder (./gallery is one)
                    assert not (path / "__init__.py").exists(), f"{name}: {source} is a source package"
                else:
                    assert path.exists(), f"{name}: {source} does not exist"
            else:
                assert source in doc["volumes"], f"{name}: named volume {source} is not declared"


def test_compose_server_ports_volume_env_and_health():
    services = compose()["services"]
    for name in ("server", "server-gpu"):
        s = services[name]
        published = {str(p).split(":")[-1] for p in s["ports"]}
        assert {"50051", "8080", "9100"} <= published, name
        assert "data:/data" in s["volumes"], name
        for var in ("FACESEARCH_MAX_DISTANCE", "FACESEARCH_AUTH_TOKEN", "FACESEARCH_INSECURE"):
            assert INTERPOLATION.fullmatch(str(s["environment"][var])), f"{name}: {var} is not ${{VAR:-default}}"
        test = s["healthcheck"]["test"]
        assert test[0] == "CMD" and test[1:4] == ["python", "-m", "facesearch.server.probe"], name
        assert s["build"]["dockerfile"] == ("docker/Dockerfile" if name == "server" else "docker/Dockerfile.gpu")
    # unset by default, so a calibrated cutoff can apply; the settings' own default is 3.5
    assert interpolate(services["server"]["environment"]["FACESEARCH_MAX_DISTANCE"]) == ""


def test_compose_server_refuses_to_start_without_a_token_and_says_how(monkeypatch):
    """The container listens on all interfaces: with compose's defaults the server must refuse, and the
    file's header must say in one line how to start it securely."""
    from facesearch.server.config import ServerConfig
    from facesearch.settings import SettingError

    env = {}
    for keyword, rest in instructions(DOCKERFILES[0]):
        if keyword == "ENV":
            env.update(part.split("=", 1) for part in rest.split() if "=" in part)
    env.update({k: interpolate(str(v)) for k, v in compose()["services"]["server"]["environment"].items()})
    for k, v in env.items():
        if k.startswith("FACESEARCH_"):
            monkeypatch.setenv(k, v)
    assert not env["FACESEARCH_ADDRESS"].startswith("127."), "the image listens beyond loopback"
    assert not env["FACESEARCH_HTTP_ADDRESS"].startswith("127."), "the image serves REST beyond loopback"
    with pytest.raises(SettingError, match="without a token.*FACESEARCH_AUTH_TOKEN.*FACESEARCH_INSECURE=1"):
        ServerConfig.from_env()
    monkeypatch.setenv("FACESEARCH_NO_GRPC", "1")   # the HTTP port alone follows the same rule
    with pytest.raises(SettingError, match="refusing to serve 0.0.0.0:8080 beyond loopback without a token"):
        ServerConfig.from_env()
    monkeypatch.setenv("FACESEARCH_AUTH_TOKEN", "s3cret")
    assert ServerConfig.from_env().plaintext_token   # starts, and warns that the token needs TLS
    header = [line for line in COMPOSE.read_text().splitlines() if line.startswith("#")]
    assert any("FACESEARCH_AUTH_TOKEN=$(openssl rand -hex 32) docker compose up -d server" in line for line in header)


def test_compose_gpu_services_reserve_a_gpu():
    services = compose()["services"]
    for name in ("server-gpu", "trainer"):
        devices = services[name]["deploy"]["resources"]["reservations"]["devices"]
        assert any(d["driver"] == "nvidia" and "gpu" in d["capabilities"] for d in devices), name
        assert services[name]["build"]["dockerfile"] == "docker/Dockerfile.gpu", name
    assert "models:/models" in services["trainer"]["volumes"]


def test_compose_indexer_waits_for_a_healthy_server():
    indexer = compose()["services"]["indexer"]
    assert indexer["depends_on"]["server"]["condition"] == "service_healthy"
    argv = indexer.get("entrypoint", []) + indexer["command"]
    assert argv[:3] == ["facesearch-indexer", "add", "/gallery"]
    assert argv[argv.index("--server") + 1] == "server:50051"
    assert "FACESEARCH_AUTH_TOKEN" in indexer["environment"]  # the indexer's --token default


def test_compose_commands_are_real():
    services = compose()["services"]
    for name, service in services.items():
        if "build" not in service:
            continue  # a third-party image (prometheus)
        argv = list(service.get("entrypoint") or []) + list(service.get("command") or [])
        if not argv:  # the image's CMD
            dockerfile = REPO / service["build"]["context"] / service["build"]["dockerfile"]
            argv = exec_form(next(rest for kw, rest in reversed(instructions(dockerfile)) if kw == "CMD"))
        check_command(argv, name)
        test = service.get("healthcheck", {}).get("test")
        if test and test[0] == "CMD":
            check_command(test[1:], f"{name} healthcheck")


def test_prometheus_scrapes_the_metrics_port():
    prometheus = compose()["services"]["prometheus"]
    mount = next(v for v in prometheus["volumes"] if v.startswith("./docker/prometheus.yml:"))
    assert mount.split(":")[1] == "/etc/prometheus/prometheus.yml"
    config = yaml.safe_load((REPO / "docker" / "prometheus.yml").read_text())
    targets = [t for job in config["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]]
    assert "server:9100" in targets and "server-gpu:9100" in targets


# -- compose profile `scale`: PostgreSQL + Milvus, two replicas, Envoy ----------------------------------
def test_scale_profile_third_party_images_are_pinned():
    services = compose()["services"]
    for name, service in services.items():
        if "build" in service:
            continue
        image = service["image"]
        repo, _, tag = image.rpartition(":")
        assert repo and tag and tag != "latest" and "/" not in tag, f"{name}: {image} is not pinned to a version"
    images = {name: services[name]["image"] for name in SCALE if "build" not in services[name]}
    assert images["milvus"] == "milvusdb/milvus:v2.3.5" and images["postgres"].startswith("postgres:16")
    assert images["lb"].startswith("envoyproxy/envoy:v")
    milvus_env = services["milvus"]["environment"]
    assert milvus_env["ETCD_ENDPOINTS"] == "etcd:2379" and milvus_env["MINIO_ADDRESS"] == "minio:9000"


def test_scale_replicas_share_postgresql_and_milvus_with_their_own_data_dirs():
    from sqlalchemy.engine import make_url

    services = compose()["services"]
    volumes = set()
    for name in REPLICAS:
        s = services[name]
        env = {k: interpolate(str(v)) for k, v in s["environment"].items()}
        url = make_url(env["FACESEARCH_DATABASE_URL"])
        assert url.drivername == "postgresql+psycopg" and url.host == "postgres" and url.port == 5432, name
        assert url.database == services["postgres"]["environment"]["POSTGRES_DB"], name
        assert url.username == services["postgres"]["environment"]["POSTGRES_USER"], name
        assert env["FACESEARCH_VECTOR_BACKEND"] == "milvus" and env["FACESEARCH_MILVUS_URI"] == "http://milvus:19530"
        # the token passes through from the operator's environment; without it the replicas refuse to listen
        assert s["environment"]["FACESEARCH_AUTH_TOKEN"] == "${FACESEARCH_AUTH_TOKEN:-}", name
        assert "FACESEARCH_INSECURE" in s["environment"], name
        assert "ports" not in s, f"{name}: the replicas are reached through the load balancer only"
        assert s["build"]["dockerfile"] == "docker/Dockerfile" and "args" not in s["build"], name
        data = [v for v in s["volumes"] if v.endswith(":/data")]
        assert len(data) == 1, name
        volumes.add(data[0])
        test = s["healthcheck"]["test"]
        assert test[1:4] == ["python", "-m", "facesearch.server.probe"], name
    assert len(volumes) == len(REPLICAS), "each replica needs a data dir of its own (its lock)"
    assert services["facesearch-1"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["facesearch-1"]["depends_on"]["milvus"]["condition"] == "service_healthy"
    # one replica migrates the database before the other starts
    assert services["facesearch-2"]["depends_on"]["facesearch-1"]["condition"] == "service_healthy"
    # the image needs pymilvus: the CPU image's lock has it
    assert installed_lock(DOCKERFILES[0]) == "requirements/runtime.lock"
    assert re.search(r"^pymilvus==", (REPO / "requirements" / "runtime.lock").read_text(), re.M)


def test_scale_load_balancer_speaks_grpc_to_every_replica():
    services = compose()["services"]
    lb = services["lb"]
    mount = next(v for v in lb["volumes"] if v.startswith("./docker/envoy.yaml:"))
    config_path = mount.split(":")[1]
    assert config_path in lb["command"]
    config = yaml.safe_load((REPO / "docker" / "envoy.yaml").read_text())
    listener = config["static_resources"]["listeners"][0]
    container_port = int(str(lb["ports"][0]).split(":")[-1])
    assert listener["address"]["socket_address"]["port_value"] == container_port
    manager = listener["filter_chains"][0]["filters"][0]["typed_config"]
    routes = manager["route_config"]["virtual_hosts"][0]["routes"]
    (cluster,) = config["static_resources"]["clusters"]
    assert {r["route"]["cluster"] for r in routes} == {cluster["name"]}
    options = cluster["typed_extension_protocol_options"]["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]
    assert "http2_protocol_options" in options["explicit_http_config"], "gRPC needs HTTP/2 to the replicas"
    assert any("grpc_health_check" in hc for hc in cluster["health_checks"])
    targets = [(e["endpoint"]["address"]["socket_address"]["address"],
                e["endpoint"]["address"]["socket_address"]["port_value"])
               for group in cluster["load_assignment"]["endpoints"] for e in group["lb_endpoints"]]
    from facesearch.server.config import ServerConfig

    port = int(ServerConfig.model_fields["address"].default.rsplit(":", 1)[1])
    image_port = next(rest for kw, rest in instructions(DOCKERFILES[0]) if kw == "EXPOSE").split()[0]
    assert sorted(targets) == [(name, int(image_port)) for name in REPLICAS] and port == int(image_port)
    assert set(lb["depends_on"]) == set(REPLICAS)


def test_every_setting_named_is_real():
    """Compose, the Dockerfiles, the README and the code name only variables a settings class declares."""
    real = real_settings()
    assert {"FACESEARCH_ADDRESS", "FACESEARCH_DATA_DIR", "FACESEARCH_CACHE_DIR", "FACESEARCH_MODEL",
            "FACESEARCH_AUTH_TOKEN", "FACESEARCH_INDEX", "FACESEARCH_FAISS_GPU", "FACESEARCH_MAX_BATCH"} <= real
    sources = [COMPOSE, *DOCKERFILES, REPO / "docker" / "prometheus.yml", REPO / "README.md", REPO / "Makefile"]
    sources += [path for folder in set(PACKAGE_DIRS.values()) for path in (REPO / folder).rglob("*.py")]
    # The test suite's own: where it finds the seed's data; the console tests' Chromium, screenshots
    # folder and README screenshot refresh. No settings of the service.
    test_only = {"FACESEARCH_SHARED", "FACESEARCH_CHROMIUM", "FACESEARCH_TEST_ARTIFACTS", "FACESEARCH_UPDATE_DOCS_IMG"}
    for path in sources:
        unknown = set(SETTING.findall(path.read_text())) - real - test_only
        assert not unknown, f"{path.relative_to(REPO)} names settings no settings class declares: {sorted(unknown)}"


def test_the_server_reads_every_setting():
    """The server's classes hold every variable (the trainer's ReportSettings reuses one of them)."""
    from facesearch.server.config import SETTINGS
    from facesearch.settings import env_var

    assert {env_var(cls, name) for cls in SETTINGS for name in cls.setting_names()} == real_settings()


def test_every_setting_is_a_server_flag():
    """facesearch-server --help lists each setting: its flag, its variable and its default."""
    from facesearch.server.config import SETTINGS
    from facesearch.settings import env_var, flag, shown_default

    script = Path(sys.executable).with_name("facesearch-server")
    result = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "COLUMNS": "100"})
    assert result.returncode == 0, result.stderr
    # one entry per option, its wrapped lines joined
    entries = [" ".join(entry.split()) for entry in re.split(r"\n(?=  -)", result.stdout)]
    for cls in SETTINGS:
        for name in cls.setting_names():
            entry = next((e for e in entries if e.startswith(flag(cls, name) + " ")), None)
            assert entry, f"{flag(cls, name)} is not in facesearch-server --help"
            assert f"[{env_var(cls, name)}, default {shown_default(cls, name)}]" in entry, entry


def test_readme_settings_table_is_the_classes():
    """The README's Configuration table is generated from the classes: one row per variable."""
    from facesearch.server.config import SETTINGS
    from facesearch.settings import table

    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("## Configuration"):readme.index("\n## ", readme.index("## Configuration") + 5)]
    expected = table(*SETTINGS)
    assert expected in section, ("README's Configuration table differs from the settings classes; replace it "
                                 "with the output of `python -m facesearch.server.config`:\n" + expected)
    rows = [ln for ln in section.splitlines() if ln.startswith("| `FACESEARCH_")]
    assert sorted(SETTING.search(ln).group() for ln in rows) == sorted(real_settings())


# -- Dockerfiles ------------------------------------------------------------------------------------
@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_base_user_health_and_entry(dockerfile):
    all_stages = stages(dockerfile)
    assert len(all_stages) >= 2, "multi-stage: a builder and a runtime"
    for stage in all_stages:
        assert stage[0][1].split()[0] == "python:3.11-slim", stage[0]
    runtime = all_stages[-1]
    users = [rest for kw, rest in runtime if kw == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0"), "the runtime must not run as root"
    health = [rest for kw, rest in runtime if kw == "HEALTHCHECK"]
    assert len(health) == 1
    assert exec_form(health[0][health[0].index("CMD") + 3:].strip())[:3] == ["python", "-m", "facesearch.server.probe"]
    assert exec_form([rest for kw, rest in runtime if kw == "CMD"][-1]) == ["facesearch-server"]
    exposed = {p for kw, rest in runtime if kw == "EXPOSE" for p in rest.split()}
    assert {"50051", "9100"} <= exposed
    env = env_pairs(runtime)
    assert env["FACESEARCH_ADDRESS"] == "0.0.0.0:50051"
    assert env["FACESEARCH_METRICS_ADDRESS"] == "0.0.0.0" and env["FACESEARCH_METRICS_PORT"] == "9100"
    assert env["FACESEARCH_DATA_DIR"] == "/data"
    assert any(kw == "VOLUME" and "/data" in rest for kw, rest in runtime)
    # the weights are baked in: the runtime reads the cache copied from the builder
    cache = env["FACESEARCH_CACHE_DIR"]
    assert any(kw == "COPY" and rest.startswith("--from=builder") and rest.split()[-1] == cache
               for kw, rest in runtime)
    builder_runs = " ".join(rest for kw, rest in all_stages[0] if kw == "RUN")
    assert f"FACESEARCH_CACHE_DIR={cache} python -m facesearch.embedder fetch" in builder_runs


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_copies_every_package_folder(dockerfile):
    patterns = dockerignore_patterns()
    sources = set()
    for keyword, rest in stages(dockerfile)[0]:
        if keyword == "COPY" and not rest.startswith("--from"):
            *srcs, _dest = rest.split()
            sources.update(s.rstrip("/") for s in srcs)
    needed = {"pyproject.toml", "README.md", *PACKAGE_DIRS.values()}
    assert needed <= sources, f"not copied: {sorted(needed - sources)}"
    for source in sources:
        assert (REPO / source).exists(), source
        assert not ignored(source, patterns), f"{source} is excluded by .dockerignore"


LOCKS = {"Dockerfile": "requirements/runtime.lock", "Dockerfile.gpu": "requirements/gpu.lock"}


def installed_lock(dockerfile: Path) -> str:
    """The lock the builder installs; every pip install there is either it, with hashes, or the project."""
    locks = []
    for keyword, rest in stages(dockerfile)[0]:
        if keyword != "RUN":
            continue
        for command in re.split(r"&&", rest):
            words = command.split()
            if "pip" not in words or "install" not in words:
                continue
            args = words[words.index("install") + 1:]
            if args == ["--upgrade", "pip"]:
                continue
            if "-r" in args:
                assert "--require-hashes" in args, f"{dockerfile.name}: {command.strip()}"
                locks.append(args[args.index("-r") + 1])
            else:
                assert args == ["--no-deps", "."], f"{dockerfile.name} resolves outside the lock: {command.strip()}"
    assert len(locks) == 1, locks
    return locks[0]


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_installs_from_its_lock(dockerfile):
    lock = installed_lock(dockerfile)
    assert lock == LOCKS[dockerfile.name]
    copies = [rest.split() for kw, rest in stages(dockerfile)[0] if kw == "COPY"]
    assert [lock, lock] in copies, f"{dockerfile.name} does not copy {lock}"
    assert not ignored(lock, dockerignore_patterns())


def test_dockerignore_keeps_local_state_out():
    patterns = dockerignore_patterns()
    for path in (".venv", ".git", "var", "bench/results", "server/__pycache__", "gallery/x.pyc",
                 "facesearch.egg-info", ".pytest_cache"):
        assert ignored(path, patterns), path
    for path in ("server/probe.py", "gallery/store.py", "embedder/models.py", "pyproject.toml",
                 "docker/requirements.py", "gallery/migrations/script.py.mako"):
        assert not ignored(path, patterns), path


def test_gpu_requirements_swap_the_cpu_builds():
    sys.path.insert(0, str(REPO / "docker"))
    try:
        import requirements
    finally:
        sys.path.pop(0)
    cpu = requirements.requirements(REPO / "pyproject.toml")
    gpu = requirements.requirements(REPO / "pyproject.toml", gpu=True)
    assert cpu == PYPROJECT["project"]["dependencies"]
    names = {requirements.name(r) for r in gpu}
    assert not names & {"tensorflow-cpu", "faiss-cpu"}
    assert {"tensorflow", "faiss-gpu"} <= names
    assert set(PYPROJECT["project"]["optional-dependencies"]["gpu"]) <= set(gpu)


def test_code_default_address_stays_loopback():
    from facesearch.server import probe
    from facesearch.server.config import ServerConfig

    assert ServerConfig().address == probe.DEFAULT_ADDRESS == "127.0.0.1:50051"


# -- the probe --------------------------------------------------------------------------------------
def test_local_target():
    from facesearch.server.probe import local_target

    assert local_target("0.0.0.0:50051") == "127.0.0.1:50051"
    assert local_target("[::]:7000") == "127.0.0.1:7000"
    assert local_target(":7000") == "127.0.0.1:7000"
    assert local_target("10.1.2.3") == "10.1.2.3:50051"
    assert local_target("[::1]:9") == "[::1]:9"
    assert local_target("::1") == "[::1]:50051"
    assert local_target("unix:/run/fs.sock") == "unix:/run/fs.sock"
