"""docker-compose.yaml, the Dockerfile and docs/deployment.md's quick start, offline: the compose file passes the
compose-spec schema (vendored in deploy/schemas), Kafka answers both the services and the host's CLI, one image is
built once, every service that runs for long has a healthcheck that its dependents wait for, the build context
leaves out the virtualenv, models and git, the source is copied after the dependencies are installed, and the quick
start names only services, profiles and ports that the file defines."""

from __future__ import annotations

import copy
import json
import re
import shlex
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from streamrag.connectors.metrics_server import metrics_port
from streamrag.core.config import KafkaConfig
from streamrag.core.settings import Settings, load_settings
from streamrag.schemas.vocabulary import WorkerKind

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((ROOT / "deploy" / "schemas" / "compose-spec.json").read_text(encoding="utf-8"))
IMAGE = "streamrag:local"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yaml").read_text(encoding="utf-8"))
    return doc


def env(service: dict[str, Any]) -> dict[str, str]:
    e = service.get("environment", {})
    return {str(k): str(v) for k, v in e.items()} if isinstance(e, dict) else dict(x.split("=", 1) for x in e)


def published(compose: dict[str, Any]) -> dict[int, tuple[str, int]]:
    """host port -> (service, container port), from "127.0.0.1:HOST:CONTAINER" entries."""
    out = {}
    for name, s in compose["services"].items():
        for p in s.get("ports", []):
            host_ip, host, container = str(p).split(":")
            assert host_ip == "127.0.0.1", f"{name} publishes {p} beyond the host's loopback"
            out[int(host)] = (name, int(container))
    return out


def test_the_file_passes_the_compose_spec_schema(compose: dict[str, Any]) -> None:
    jsonschema.validate(compose, SCHEMA)
    broken = copy.deepcopy(compose)
    broken["services"]["gateway"]["depends_on"]["redis"] = {"condition": "service_heathy"}  # a typo is caught
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, SCHEMA)


def test_kafka_answers_the_services_and_the_hosts_cli(compose: dict[str, Any]) -> None:
    """Advertised only as kafka:9092, the host's `streamrag publish` reaches the broker and is sent to a name it
    cannot resolve: the host needs a listener of its own, advertised as the address it connects to."""
    kenv = env(compose["services"]["kafka"])
    protocols = dict(x.split(":") for x in kenv["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    listeners = {n: int(a.rsplit(":", 1)[1]) for n, a in (x.split("://") for x in kenv["KAFKA_LISTENERS"].split(","))}
    advertised = {n: a for n, a in (x.split("://") for x in kenv["KAFKA_ADVERTISED_LISTENERS"].split(","))}
    assert set(advertised) <= set(listeners) <= set(protocols)
    # the services: the bootstrap they are given is an advertised address on the compose network
    services_bootstrap = compose["x-streamrag-env"]["STREAMRAG_KAFKA_BOOTSTRAP"]
    inside = [n for n, a in advertised.items() if a == services_bootstrap]
    assert inside and services_bootstrap.split(":")[0] == "kafka"
    # the host: the settings' default bootstrap is published onto a listener advertised as that same address
    default = KafkaConfig().bootstrap
    host_port = int(default.rsplit(":", 1)[1])
    service, container_port = published(compose)[host_port]
    assert service == "kafka"
    outside = [n for n, port in listeners.items() if port == container_port]
    assert outside and advertised[outside[0]] == default, (outside, advertised)


def test_one_image_built_once(compose: dict[str, Any]) -> None:
    ours = {n: s for n, s in compose["services"].items() if s.get("image", "").split(":")[0] == "streamrag"}
    assert {"topics", "ingest-worker", "models", "query-worker", "gateway", "replay"} <= set(ours)
    assert {s["image"] for s in ours.values()} == {IMAGE}
    builders = [n for n, s in ours.items() if "build" in s]
    assert len(builders) == 1
    assert all(s.get("pull_policy") == "never" for n, s in ours.items() if n not in builders)
    assert not [n for n, s in compose["services"].items() if "build" in s and "image" not in s]


def test_every_long_running_service_is_healthchecked_and_waited_for(compose: dict[str, Any]) -> None:
    services = compose["services"]
    one_shot = {n for n, s in services.items() if "restart" not in s and n not in {"kafka", "redis", "prometheus"}}
    assert one_shot <= {"topics", "models", "replay", "cuda-check"}
    for name, s in services.items():
        if name not in one_shot:
            assert s.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
        for dep, cond in s.get("depends_on", {}).items():
            wanted = "service_completed_successfully" if dep in one_shot else "service_healthy"
            assert cond["condition"] == wanted, (name, dep, cond)
    assert services["query-worker"]["depends_on"]["llm-server"]["condition"] == "service_healthy"


def test_the_build_context_and_layers_keep_a_source_edit_cheap() -> None:
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
               if line.strip() and not line.startswith("#")}
    assert {".venv", ".local", ".git"} <= ignored
    steps = [s.strip() for s in re.split(r"\n(?=[A-Z]+ )", (ROOT / "Dockerfile").read_text(encoding="utf-8"))
             if s.strip() and not s.startswith("#")]
    whole = next(i for i, s in enumerate(steps) if re.match(r"COPY \. ", s))
    installs = [i for i, s in enumerate(steps) if s.startswith("RUN") and "pip install" in s]
    # every dependency (torch, pyproject's list, the model packages) before the source; after it, --no-deps only
    assert [i for i in installs if i < whole] and all("--no-deps -e ." in steps[i] for i in installs if i > whole)
    before = "\n".join(steps[:whole])
    assert "COPY pyproject.toml" in before and "tomllib" in before and "torch" in before
    assert "model-packages.txt" in before and "resolve_model" in before
    assert not [s for s in steps[:whole] if s.startswith("COPY") and re.search(r"COPY (streamrag/?|\.) ", s)]


def quick_start() -> list[list[str]]:
    text = (ROOT / "docs" / "deployment.md").read_text(encoding="utf-8")
    section = text.split("## Docker Compose", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", section, re.S)
    assert block
    return [shlex.split(line, comments=True) for line in block.group(1).splitlines() if line.strip()]


def test_the_quick_start_names_only_what_the_file_defines(compose: dict[str, Any]) -> None:
    services = compose["services"]
    profiles = {p for s in services.values() for p in s.get("profiles", [])}
    ports = published(compose)
    commands = quick_start()
    assert commands[0][:3] == ["docker", "compose", "up"]
    for words in commands:
        if words[:2] == ["docker", "compose"]:
            args = words[2:]
            for i, w in enumerate(args):
                if w == "--profile":
                    assert args[i + 1] in profiles, args[i + 1]
            names = [w for i, w in enumerate(args) if not w.startswith("-") and (i == 0 or args[i - 1] != "--profile")]
            for name in names[1:]:  # after the subcommand: service names
                assert name in services, name
        for w in words:
            for m in re.finditer(r"(?:localhost|127\.0\.0\.1):(\d+)", w):
                assert int(m.group(1)) in ports, w
        if words and words[0] == "curl" and "-d" in words:  # the gateway takes JSON only (415 otherwise)
            assert "Content-Type: application/json" in words
            json.loads(words[words.index("-d") + 1])
        if words[0].endswith("bin/streamrag") and (words[1] == "publish" or "--via-kafka" in words):
            assert int(KafkaConfig().bootstrap.rsplit(":", 1)[1]) in ports  # the host's CLI reaches Kafka
    assert any(w[0] == "curl" and any("/v1/documents" in x for x in w) for w in commands)  # documents via the gateway


@pytest.mark.parametrize(("service", "kind"), [("ingest-worker", "ingest"), ("query-worker", "query")])
def test_worker_healthchecks_probe_the_port_their_settings_open(compose: dict[str, Any], service: str, kind: WorkerKind,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    s = compose["services"][service]
    for flat in Settings.flat_fields():
        monkeypatch.delenv(f"STREAMRAG_{flat.upper()}", raising=False)
    for name, value in env(s).items():
        monkeypatch.setenv(name, value)
    settings = load_settings()
    assert settings.worker.metrics_host == "0.0.0.0"  # inside the container: for the probe and Prometheus
    probe = " ".join(s["healthcheck"]["test"])
    assert f"http://127.0.0.1:{metrics_port(settings.worker, kind)}/metrics" in probe, probe
