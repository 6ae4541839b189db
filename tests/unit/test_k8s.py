"""deploy/k8s: the kustomize base and each overlay build (kubectl kustomize), every resource passes its schema
(kubernetes-validate for Kubernetes kinds, KEDA's from deploy/k8s/schemas), every STREAMRAG_* variable is a
setting, each bytewax StatefulSet's hostfile lists as many processes as it has replicas, every container that asks
for CUDA runs a CUDA image, each overlay names its registry, KEDA's bound follows the query side's slots and the
production overlay's identities load under the production profile."""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from streamrag.cli.workers import placement
from streamrag.connectors.auth_keys import verifier_for
from streamrag.core.errors import ServiceUnavailable
from streamrag.core.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
OVERLAYS = ["overlays/gpu-ingest", "overlays/production"]
BUILDS = ["base", *OVERLAYS]
KUBERNETES = "1.32.0"  # the kubectl client here; the schemas kubernetes-validate bundles for it
# variables that are not settings but name where a setting's secret is read (…_password_env) or the log level
NOT_SETTINGS = {"STREAMRAG_KAFKA_PASSWORD", "STREAMRAG_REDIS_PASSWORD", "STREAMRAG_LOG_LEVEL"}


def build(path: str) -> list[dict[str, Any]]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed: the Kubernetes manifests are not built here")
    out = subprocess.run([kubectl, "kustomize", str(K8S / path)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    spec = doc.get("spec", {}).get("template", {}).get("spec", {})
    return [*spec.get("initContainers", []), *spec.get("containers", [])]


@pytest.mark.parametrize("path", BUILDS)
def test_every_resource_passes_its_schema(path: str) -> None:
    docs = build(path)
    kinds = {d["kind"] for d in docs}
    assert {"StatefulSet", "Deployment", "Service", "PodDisruptionBudget", "ConfigMap", "ScaledObject"} <= kinds
    for d in docs:
        if d["apiVersion"].startswith("keda.sh/"):
            schema = K8S / "schemas" / f"keda.sh-{d['apiVersion'].split('/')[1]}-{d['kind'].lower()}.json"
            jsonschema.validate(d, json.loads(schema.read_text(encoding="utf-8")))
        else:
            kubernetes_validate.validate(d, KUBERNETES, strict=True)


def test_an_unknown_field_fails_the_check() -> None:
    docs = build("base")
    sts = next(d for d in docs if d["kind"] == "StatefulSet")
    sts["spec"]["replicaz"] = 3
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(sts, KUBERNETES, strict=True)
    so = next(d for d in docs if d["kind"] == "ScaledObject")
    so["spec"]["triggers"][0]["metadata"]["lagThreshold"] = 8  # KEDA's metadata values are strings
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(so, json.loads((K8S / "schemas" / "keda.sh-v1alpha1-scaledobject.json").read_text()))


@pytest.mark.parametrize("path", BUILDS)
def test_every_streamrag_variable_is_a_setting(path: str) -> None:
    settings = {f"STREAMRAG_{name.upper()}" for name in Settings.flat_fields()}
    names: set[str] = set()
    for d in build(path):
        if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith("streamrag-env"):
            names |= set(d["data"])
        for c in containers(d):
            names |= {e["name"] for e in c.get("env", [])}
    used = {n for n in names if n.startswith("STREAMRAG_")}
    assert used and not used - settings - NOT_SETTINGS, used - settings - NOT_SETTINGS


@pytest.mark.parametrize("path", BUILDS)
def test_bytewax_clusters_list_as_many_processes_as_they_have_replicas(path: str) -> None:
    docs = build(path)
    env = next(d["data"] for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith("streamrag-env"))
    for sts in (d for d in docs if d["kind"] == "StatefulSet"):
        name = sts["metadata"]["name"]
        assert sts["spec"]["serviceName"] == name and sts["spec"]["podManagementPolicy"] == "Parallel"
        init = {e["name"]: e.get("value") for c in containers(sts) if c["name"] == "hostfile" for e in c["env"]}
        assert int(init["BYTEWAX_REPLICAS"]) == sts["spec"]["replicas"], name
        assert init["BYTEWAX_STATEFULSET_NAME"] == name
        main = next(c for c in containers(sts) if c["name"] != "hostfile")
        worker_env = {e["name"]: e for e in main["env"]}
        assert worker_env["BYTEWAX_STATEFULSET_NAME"]["value"] == name
        assert worker_env["BYTEWAX_POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
        if "--recovery-dir" in main["command"]:  # the most workers a recovery store takes: never fewer than replicas
            assert int(env["STREAMRAG_RECOVERY_PARTITIONS"]) >= sts["spec"]["replicas"]
    # KEDA scales generation on the query group's lag on the queries topic
    so = next(d for d in docs if d["kind"] == "ScaledObject")
    meta = so["spec"]["triggers"][0]["metadata"]
    assert (meta["consumerGroup"], meta["topic"]) == (env["STREAMRAG_QUERY_GROUP"], env["STREAMRAG_TOPIC_QUERIES"])
    assert so["spec"]["scaleTargetRef"]["name"] in {d["metadata"]["name"] for d in docs if d["kind"] == "Deployment"}


def test_the_worker_finds_its_process_id_and_addresses_as_bytewax_does_in_kubernetes(tmp_path: Path) -> None:
    hostfile = tmp_path / "hostfile"
    hostfile.write_text("streamrag-ingest-0.streamrag-ingest:9999\n\nstreamrag-ingest-1.streamrag-ingest:9999\n")
    env = {"BYTEWAX_POD_NAME": "streamrag-ingest-1", "BYTEWAX_STATEFULSET_NAME": "streamrag-ingest",
           "BYTEWAX_HOSTFILE_PATH": str(hostfile)}
    assert placement(None, None, env) == (1, "streamrag-ingest-0.streamrag-ingest:9999;streamrag-ingest-1.streamrag-ingest:9999")
    assert placement(0, "a:1;b:2", env) == (0, "a:1;b:2")  # given on the command line: kept
    assert placement(None, None, {}) == (None, None)


def test_process_zero_creates_the_recovery_store_and_the_others_wait_for_it(tmp_path: Path) -> None:
    import threading

    from streamrag.cli.workers import new_recovery_store

    waited: list[str] = []
    other = threading.Thread(target=lambda: (new_recovery_store(tmp_path, 4, 1, wait_s=30), waited.append("done")))
    other.start()
    time.sleep(0.5)
    assert not waited and not list(tmp_path.glob("part-*.sqlite3"))  # process 1 never creates it
    new_recovery_store(tmp_path, 4, 0)
    other.join(30)
    assert waited == ["done"] and len(list(tmp_path.glob("part-*.sqlite3"))) == 4
    with pytest.raises(ServiceUnavailable):
        new_recovery_store(tmp_path / "none", 4, 1, wait_s=0.3)


def env_of(docs: list[dict[str, Any]], c: dict[str, Any]) -> dict[str, str]:
    """A container's environment: the ConfigMaps it reads, then its own env."""
    env: dict[str, str] = {}
    maps = {d["metadata"]["name"]: d.get("data", {}) for d in docs if d["kind"] == "ConfigMap"}
    for src in c.get("envFrom", []):
        if "configMapRef" in src:
            env |= maps[src["configMapRef"]["name"]]
    return env | {e["name"]: e["value"] for e in c.get("env", []) if "value" in e}


def image_repo(image: str) -> str:
    """registry/path/name[:tag] -> name"""
    return image.rsplit("/", 1)[-1].split(":", 1)[0]


def uses_gpu(c: dict[str, Any]) -> bool:
    return any("nvidia.com/gpu" in c.get("resources", {}).get(k, {}) for k in ("requests", "limits"))


@pytest.mark.parametrize("path", BUILDS)
def test_containers_asking_for_cuda_run_a_cuda_image(path: str) -> None:
    """The CPU image's torch has no CUDA: STREAMRAG_DEVICE=cuda on it crash-loops. A streamrag container that sets
    it, or holds a GPU, runs streamrag-cuda; a llama.cpp server holding a GPU runs a CUDA build with layers offloaded."""
    docs = build(path)
    for d in docs:
        for c in containers(d):
            repo, env = image_repo(c["image"]), env_of(docs, c)
            if repo.startswith("streamrag") and (env.get("STREAMRAG_DEVICE") == "cuda" or uses_gpu(c)):
                assert repo == "streamrag-cuda", (d["metadata"]["name"], c["image"])
                assert env.get("STREAMRAG_DEVICE") in {"cuda", "auto", None}
            if repo == "streamrag":
                assert env.get("STREAMRAG_DEVICE", "auto") != "cuda" and not uses_gpu(c), (d["metadata"]["name"], c["image"])
            if repo == "llama.cpp":
                gpu, tag = uses_gpu(c), c["image"].rsplit(":", 1)[-1]
                assert gpu == ("cuda" in tag), (d["metadata"]["name"], c["image"])
                if gpu:
                    args = c["args"]
                    assert "-ngl" in args and int(args[args.index("-ngl") + 1]) > 0


def test_the_cuda_image_is_built_on_cuda_wheels() -> None:
    """streamrag-cuda is the Dockerfile with PyTorch's CUDA wheels (docker-compose.yaml's cuda-check builds it)."""
    compose = yaml.safe_load((ROOT / "docker-compose.yaml").read_text(encoding="utf-8"))
    cuda = [s for s in compose["services"].values() if image_repo(s.get("image", "")) == "streamrag-cuda" and "build" in s]
    assert len(cuda) == 1
    assert re.fullmatch(r"https://download\.pytorch\.org/whl/cu\d+", cuda[0]["build"]["args"]["TORCH_INDEX"])
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(r'pip install [^\n]*--extra-index-url "\$TORCH_INDEX" torch', dockerfile)
    assert any(image_repo(c["image"]) == "streamrag-cuda"
               for d in build("overlays/gpu-ingest") for c in containers(d))


@pytest.mark.parametrize("path", OVERLAYS)
def test_each_overlay_names_its_registry_and_a_pinned_tag(path: str) -> None:
    kustomization = yaml.safe_load((K8S / path / "kustomization.yaml").read_text(encoding="utf-8"))
    named = {i["name"] for i in kustomization.get("images", []) if i.get("newName")}
    for d in build(path):
        for c in containers(d):
            image = c["image"]
            if image_repo(image).startswith("streamrag"):
                registry = image.split("/", 1)[0]
                assert "/" in image and ("." in registry or ":" in registry), image  # a registry host, not Docker Hub
                assert image_repo(image) in named
            assert ":" in image.rsplit("/", 1)[-1] and not image.endswith(":latest"), image


@pytest.mark.parametrize("path", BUILDS)
def test_keda_bounds_follow_the_query_sides_slots(path: str) -> None:
    """More generation servers than the query pods can keep busy only idle: maxReplicaCount =
    ceil(query replicas x STREAMRAG_GENERATION_CONCURRENCY / the server's --parallel)."""
    docs = build(path)
    so = next(d for d in docs if d["kind"] == "ScaledObject")
    target = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == so["spec"]["scaleTargetRef"]["name"])
    args = target["spec"]["template"]["spec"]["containers"][0]["args"]
    parallel = int(args[args.index("--parallel") + 1])
    query = next(d for d in docs if d["kind"] == "StatefulSet" and d["metadata"]["name"] == "streamrag-query")
    main = next(c for c in containers(query) if c["name"] == "query")
    concurrency = int(env_of(docs, main).get("STREAMRAG_GENERATION_CONCURRENCY", "4"))
    most = math.ceil(query["spec"]["replicas"] * concurrency / parallel)
    assert so["spec"]["minReplicaCount"] <= so["spec"]["maxReplicaCount"] == most
    assert int(so["spec"]["triggers"][0]["metadata"]["lagThreshold"]) == parallel


def test_the_production_overlays_identities_load_under_the_production_profile(monkeypatch: pytest.MonkeyPatch,
                                                                              tmp_path: Path) -> None:
    """Auth on without STREAMRAG_AUTH_TENANTS refuses every query: the overlay names each tenant's key with the issuer
    and audience production requires, the key's file is mounted from the overlay, and every secret it needs is named
    in the overlay's header (the Secret it tells you to create)."""
    docs = build("overlays/production")
    header = (K8S / "overlays/production/kustomization.yaml").read_text(encoding="utf-8").split("apiVersion:")[0]
    gateway = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "streamrag-gateway")
    c = gateway["spec"]["template"]["spec"]["containers"][0]
    env = env_of(docs, c)
    for flat in Settings.flat_fields():
        monkeypatch.delenv(f"STREAMRAG_{flat.upper()}", raising=False)
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    volumes = {v["name"]: v for v in gateway["spec"]["template"]["spec"]["volumes"]}
    maps = {d["metadata"]["name"]: d.get("data", {}) for d in docs if d["kind"] == "ConfigMap"}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    s = load_settings()
    assert s.worker.profile == "production" and s.auth_on and s.auth.tenants
    tenants = {}
    for tenant, k in s.auth.tenants.items():
        for field in ("jwks_file", "public_key_file"):
            if getattr(k, field):  # a file from a ConfigMap the gateway mounts
                folder, file = getattr(k, field).rsplit("/", 1)
                data = maps[volumes[mounts[folder]]["configMap"]["name"]]
                (tmp_path / file).write_text(data[file], encoding="utf-8")
                k = k.model_copy(update={field: str(tmp_path / file)})
        if k.secret_env:
            assert f"--from-literal={k.secret_env}=" in header, k.secret_env
            monkeypatch.setenv(k.secret_env, "x" * 32)
        tenants[tenant] = k
    verifier_for(s.auth.model_copy(update={"tenants": tenants}), production=True)  # ConfigError if unusable
    assert f"--from-literal={s.audit.hash_key_env}=" in header
    assert f"--from-literal={s.encryption.keys_env}=" in header and s.encryption.s3_sse == "AES256"  # at rest (#38)


def test_the_base_ships_the_alert_rules_as_a_config_map() -> None:
    """The built ConfigMap holds deploy/prometheus's rule files byte for byte (tests/unit/test_alerts.py keeps the
    copies kustomize reads equal to them)."""
    (rules,) = [d for d in build("base") if d["kind"] == "ConfigMap"
                and d["metadata"]["name"].startswith("streamrag-prometheus-rules")]
    prom = ROOT / "deploy" / "prometheus"
    assert rules["data"] == {n: (prom / n).read_text(encoding="utf-8") for n in ("alerts.yml", "slo-cpu.yml", "slo-gpu.yml")}
