"""deploy/k8s: the kustomize base and each overlay build (kubectl kustomize), every resource passes its schema
(kubernetes-validate for Kubernetes kinds, KEDA's from deploy/k8s/schemas), every STREAMRAG_* variable is a
setting, and each bytewax StatefulSet's hostfile lists as many processes as it has replicas."""

from __future__ import annotations

import json
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
from streamrag.core.errors import ServiceUnavailable
from streamrag.core.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
BUILDS = ["base", "overlays/gpu-ingest", "overlays/production"]
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
