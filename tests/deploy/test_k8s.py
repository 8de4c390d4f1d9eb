"""The KubeRay manifests in deploy/k8s: they parse, and they are secure by default.

No Kubernetes here: the YAML is read with yaml.safe_load_all and its security properties
are checked (token from a Secret in every Ray container, no Secret or literal in the
repository, no Service exposed outside the cluster, GPU limits, one shared volume).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.secrets_scan import REPO, literal_secrets

K8S = REPO / "deploy" / "k8s"
RAY_TOKEN_SECRET = ("lessdata-ray-token", "auth_token")


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


@pytest.fixture(scope="module")
def objects() -> dict[tuple[str, str], dict[str, Any]]:
    """(kind, name) -> object, over every manifest."""
    found = {}
    for path in sorted(K8S.glob("*.yaml")):
        for doc in _docs(path):
            if doc.get("kind") == "Kustomization":
                continue
            key = (doc["kind"], doc["metadata"]["name"])
            assert key not in found, f"{key} defined twice"
            found[key] = doc
    return found


def _pod_specs(obj: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    spec = obj.get("spec", {})
    if obj["kind"] == "RayCluster":
        yield "head", spec["headGroupSpec"]["template"]["spec"]
        for group in spec["workerGroupSpecs"]:
            yield group["groupName"], group["template"]["spec"]
    elif obj["kind"] == "RayJob":
        yield "submitter", spec["submitterPodTemplate"]["spec"]
    elif obj["kind"] in ("Deployment", "StatefulSet"):
        yield obj["metadata"]["name"], spec["template"]["spec"]


def _env(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e for e in container.get("env", [])}


def test_every_manifest_parses_and_the_kustomization_lists_them() -> None:
    files = sorted(K8S.glob("*.yaml"))
    assert files
    for path in files:
        docs = _docs(path)
        assert docs, path
        assert all("kind" in d and "apiVersion" in d for d in docs), path
    (kustomization,) = _docs(K8S / "kustomization.yaml")
    listed = set(kustomization["resources"])
    assert all((K8S / name).is_file() for name in listed)
    per_submission = {"rayjob-paper-data-step.yaml", "kustomization.yaml"}
    assert listed == {p.name for p in files} - per_submission
    assert kustomization["namespace"] == "lessdata"


def test_no_secret_object_and_no_literal_in_the_manifests(
        objects: dict[tuple[str, str], dict[str, Any]]) -> None:
    assert [k for k in objects if k[0] == "Secret"] == []
    for path in K8S.glob("*.yaml"):
        assert literal_secrets(path.read_text()) == [], path
    for obj in objects.values():
        for _, pod in _pod_specs(obj):
            for container in pod.get("containers", []) + pod.get("initContainers", []):
                for name, entry in _env(container).items():
                    secretish = any(w in name for w in ("PASSWORD", "TOKEN", "SECRET_KEY"))
                    if secretish:
                        assert "value" not in entry, (name, entry)
                        assert "secretKeyRef" in entry["valueFrom"], (name, entry)


def test_every_ray_container_gets_the_token_from_the_secret(
        objects: dict[tuple[str, str], dict[str, Any]]) -> None:
    ray_objects = [o for o in objects.values() if o["kind"] in ("RayCluster", "RayJob")]
    assert {o["kind"] for o in ray_objects} == {"RayCluster", "RayJob"}
    checked = 0
    for obj in ray_objects:
        for group, pod in _pod_specs(obj):
            for container in pod["containers"]:
                env = _env(container)
                assert env["RAY_AUTH_MODE"]["value"] == "token", (group, container["name"])
                ref = env["RAY_AUTH_TOKEN"]["valueFrom"]["secretKeyRef"]
                assert (ref["name"], ref["key"]) == RAY_TOKEN_SECRET, group
                checked += 1
    assert checked >= 3  # head, GPU workers, RayJob submitter
    cluster = objects[("RayCluster", "lessdata")]["spec"]
    assert cluster["authOptions"] == {"mode": "token", "secretName": RAY_TOKEN_SECRET[0]}
    assert cluster["rayVersion"] == "2.60.0"


def test_gpu_workers_have_gpu_limits_and_the_node_type(
        objects: dict[tuple[str, str], dict[str, Any]]) -> None:
    (group,) = objects[("RayCluster", "lessdata")]["spec"]["workerGroupSpecs"]
    (container,) = group["template"]["spec"]["containers"]
    assert int(container["resources"]["limits"]["nvidia.com/gpu"]) >= 1
    # KubeRay passes the value on to `ray start --resources` as it is: a quoted JSON string.
    resources = group["rayStartParams"]["resources"]
    assert json.loads(json.loads(resources)) == {"gpu-node": 1}
    head = objects[("RayCluster", "lessdata")]["spec"]["headGroupSpec"]
    assert head["rayStartParams"]["num-cpus"] == "0"  # trials run on the workers


def test_head_and_workers_mount_one_shared_claim_at_the_same_path(
        objects: dict[tuple[str, str], dict[str, Any]]) -> None:
    claims = {}
    for group, pod in _pod_specs(objects[("RayCluster", "lessdata")]):
        volumes = {v["name"]: v for v in pod["volumes"]}
        (container,) = pod["containers"]
        storage = _env(container)["LESSDATA_STORAGE"]["value"]
        (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == storage]
        claims[group] = (volumes[mount["name"]]["persistentVolumeClaim"]["claimName"], storage)
    assert set(claims.values()) == {("lessdata-shared", "/shared")}
    pvc = objects[("PersistentVolumeClaim", "lessdata-shared")]
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]


def test_mlflow_runs_basic_auth_on_postgres_from_secrets(
        objects: dict[tuple[str, str], dict[str, Any]]) -> None:
    deployment = objects[("Deployment", "mlflow")]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    command = container["command"]
    assert "--app-name=basic-auth" in command
    assert "--backend-store-uri=postgresql://mlflow@postgres:5432/mlflow" in command
    assert "--artifacts-destination=/mlartifacts" in command
    env = _env(container)
    for name in ("PGPASSWORD", "MLFLOW_FLASK_SERVER_SECRET_KEY", "MLFLOW_AUTH_ADMIN_PASSWORD"):
        assert env[name]["valueFrom"]["secretKeyRef"]["name"] == "lessdata-mlflow", name
    head = objects[("RayCluster", "lessdata")]["spec"]["headGroupSpec"]["template"]["spec"]
    head_env = _env(head["containers"][0])
    assert head_env["MLFLOW_TRACKING_URI"]["value"] == "http://mlflow:5000"
    assert "secretKeyRef" in head_env["MLFLOW_TRACKING_PASSWORD"]["valueFrom"]


def test_nothing_is_exposed_outside_the_cluster(
        objects: dict[tuple[str, str], dict[str, Any]]) -> None:
    for (kind, name), obj in objects.items():
        if kind == "Service":
            assert obj["spec"].get("type", "ClusterIP") == "ClusterIP", name
        assert kind not in ("Ingress", "Route"), name
    head = objects[("RayCluster", "lessdata")]["spec"]["headGroupSpec"]
    assert head.get("serviceType", "ClusterIP") == "ClusterIP"


def test_pods_run_unprivileged(objects: dict[tuple[str, str], dict[str, Any]]) -> None:
    for obj in objects.values():
        for group, pod in _pod_specs(obj):
            assert pod["securityContext"]["runAsNonRoot"] is True, group
            assert pod.get("automountServiceAccountToken") is False, group
            for container in pod["containers"] + pod.get("initContainers", []):
                assert container["securityContext"]["allowPrivilegeEscalation"] is False, group


def test_the_rayjob_submits_the_grid_to_the_running_cluster(
        objects: dict[tuple[str, str], dict[str, Any]]) -> None:
    job = objects[("RayJob", "paper-data-step-mnist")]["spec"]
    assert job["clusterSelector"] == {"ray.io/cluster": "lessdata"}
    words = job["entrypoint"].split()
    assert words[:3] == ["lessdata", "submit", "paper-data-step"]
    assert words[words.index("--dataset") + 1] == "mnist"
    assert words[words.index("--storage") + 1] == "/shared"
    assert words[words.index("--tracking-uri") + 1] == "http://mlflow:5000"
