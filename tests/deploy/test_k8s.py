"""The KubeRay manifests in deploy/k8s: they parse, and they are secure by default.

No Kubernetes here: the YAML is read with yaml.safe_load_all and its security properties
are checked: secrets only as read-only mounted files (never env), the Ray token in every
Ray process, egress of every pod restricted (no cloud metadata address, no API server),
no Service exposed outside the cluster, unprivileged read-only containers, images pinned
by digest, and storage that keeps what workers write apart from what the driver trusts.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.secrets_scan import REPO, literal_secrets

K8S = REPO / "deploy" / "k8s"
NAMESPACE = "lessdata"
PER_SUBMISSION = {"driver-job-paper-data-step.yaml", "kustomization.yaml"}
DIGEST = re.compile(r"^[\w./:-]+@sha256:[0-9a-f]{64}$")
OWN_IMAGES = {"lessdata", "lessdata-mlflow"}  # pinned by `kustomize edit set image` at deploy
METADATA = ("169.254.169.254", 80)
# The API server as pods meet it: the `kubernetes` Service's address, and typical
# endpoints (a control-plane node's address, a managed endpoint's).
API_SERVER = [("10.96.0.1", 443), ("10.0.0.1", 443), ("172.18.0.2", 6443), ("34.118.224.1", 443)]
INTERNET = [("1.1.1.1", 443), ("140.82.112.3", 22)]


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


def _pod_templates(obj: dict[str, Any]) -> Iterator[tuple[str, dict[str, str], dict[str, Any]]]:
    """(group, labels as the pods get them, pod spec) of each kind of pod ``obj`` makes."""
    spec = obj.get("spec", {})
    if obj["kind"] == "RayCluster":
        ray = {"ray.io/cluster": obj["metadata"]["name"]}  # KubeRay adds it to every pod
        head = spec["headGroupSpec"]["template"]
        yield "head", {**head["metadata"]["labels"], **ray}, head["spec"]
        for group in spec["workerGroupSpecs"]:
            template = group["template"]
            yield group["groupName"], {**template["metadata"]["labels"], **ray}, template["spec"]
    elif obj["kind"] in ("Deployment", "StatefulSet", "Job"):
        template = spec["template"]
        yield obj["metadata"]["name"], template["metadata"]["labels"], template["spec"]


def _pods(objects: dict[tuple[str, str], dict[str, Any]]
          ) -> list[tuple[str, dict[str, str], dict[str, Any]]]:
    return [p for obj in objects.values() for p in _pod_templates(obj)]


def _containers(pod: dict[str, Any]) -> list[dict[str, Any]]:
    return pod["containers"] + pod.get("initContainers", [])


def _env(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e for e in container.get("env", [])}


def _pod(objects: dict[tuple[str, str], dict[str, Any]], group: str
         ) -> tuple[dict[str, str], dict[str, Any]]:
    (found,) = [(labels, pod) for g, labels, pod in _pods(objects) if g == group]
    return found


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
    assert listed == {p.name for p in files} - PER_SUBMISSION
    assert kustomization["namespace"] == NAMESPACE


# --- secrets: mounted files, never environment variables ----------------------------------

def test_no_secret_object_and_no_literal_in_the_manifests(
        objects: dict[tuple[str, str], dict[str, Any]]) -> None:
    assert [k for k in objects if k[0] == "Secret"] == []
    for path in K8S.glob("*.yaml"):
        assert literal_secrets(path.read_text()) == [], path


def test_no_secret_reaches_a_container_through_its_environment(
        objects: dict[tuple[str, str], dict[str, Any]]) -> None:
    secretish = re.compile(r"PASSWORD|TOKEN|SECRET_KEY|PASSWD")
    for group, _, pod in _pods(objects):
        for container in _containers(pod):
            where = (group, container["name"])
            assert not any("secretRef" in source for source in container.get("envFrom", [])), where
            for name, entry in _env(container).items():
                assert "secretKeyRef" not in entry.get("valueFrom", {}), (*where, name)
                if secretish.search(name):
                    assert name.endswith(("_FILE", "_PATH")), (*where, name)


def test_every_secret_file_is_a_read_only_mount_of_a_secret(
        objects: dict[tuple[str, str], dict[str, Any]]) -> None:
    checked = 0
    for group, _, pod in _pods(objects):
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        for container in _containers(pod):
            for name, entry in _env(container).items():
                if not name.endswith(("_FILE", "_PATH")) or name == "MLFLOW_AUTH_CONFIG_PATH":
                    continue  # the auth settings are in the image: no secret
                path = entry["value"]
                (mount,) = [m for m in container["volumeMounts"]
                            if path.startswith(m["mountPath"].rstrip("/") + "/")]
                assert mount.get("readOnly") is True, (group, name)
                assert "secret" in volumes[mount["name"]], (group, name)
                checked += 1
    assert checked >= 10


# Which pods may mount which Secret: least privilege, the admin password in the init only.
SECRET_MOUNTS = {
    "lessdata-ray-token": {"head", "gpu", "paper-data-step-mnist"},
    "lessdata-postgres": {"postgres", "mlflow"},
    "lessdata-mlflow": {"mlflow"},
    "lessdata-mlflow-admin": {"mlflow"},
    "lessdata-mlflow-driver": {"mlflow", "paper-data-step-mnist"},
    "lessdata-mlflow-tls": {"mlflow", "paper-data-step-mnist"},
}


def test_each_secret_is_mounted_only_where_it_is_needed(
        objects: dict[tuple[str, str], dict[str, Any]]) -> None:
    mounted: dict[str, set[str]] = {}
    for group, _, pod in _pods(objects):
        for volume in pod.get("volumes", []):
            if "secret" in volume:
                mounted.setdefault(volume["secret"]["secretName"], set()).add(group)
    assert mounted == SECRET_MOUNTS


def test_the_admin_password_is_not_in_the_mlflow_server(
        objects: dict[tuple[str, str], dict[str, Any]]) -> None:
    _, pod = _pod(objects, "mlflow")
    admin_volumes = {v["name"] for v in pod["volumes"]
                     if v.get("secret", {}).get("secretName") == "lessdata-mlflow-admin"}
    (admin_volume,) = admin_volumes
    assert pod["volumes"][[v["name"] for v in pod["volumes"]].index(admin_volume)][
        "secret"]["optional"] is True  # deletable once the admin exists
    users = {c["name"] for c in _containers(pod)
             if any(m["name"] == admin_volume for m in c.get("volumeMounts", []))}
    assert users == {"mlflow-init"}
    (init,) = pod["initContainers"]
    assert init["command"][-1] == "/opt/mlflow/init_auth.py"
    assert _env(init)["LESSDATA_MLFLOW_USERNAME"]["value"] == "lessdata"


def test_ray_pods_get_the_token_as_a_file_and_nothing_of_mlflow(
        objects: dict[tuple[str, str], dict[str, Any]]) -> None:
    cluster = objects[("RayCluster", "lessdata")]
    assert "authOptions" not in cluster["spec"]  # KubeRay would inject the token as env
    assert cluster["spec"]["rayVersion"] == "2.60.0"
    checked = 0
    for group, labels, pod in _pods(objects):
        if "ray.io/cluster" not in labels and labels.get(
                "app.kubernetes.io/name") != "lessdata-driver":
            continue
        (container,) = pod["containers"]
        env = _env(container)
        assert env["RAY_AUTH_MODE"]["value"] == "token", group
        assert env["RAY_AUTH_TOKEN_PATH"]["value"].endswith("/auth_token"), group
        assert "RAY_AUTH_TOKEN" not in env, group
        if "ray.io/cluster" in labels:
            assert not any(k.startswith("MLFLOW_TRACKING") for k in env), group
        checked += 1
    assert checked == 3  # head, GPU workers, the driver


def test_the_driver_signs_in_as_lessdata_over_tls(
        objects: dict[tuple[str, str], dict[str, Any]]) -> None:
    _, pod = _pod(objects, "paper-data-step-mnist")
    (container,) = pod["containers"]
    env = _env(container)
    assert env["MLFLOW_TRACKING_USERNAME"]["value"] == "lessdata"
    assert env["MLFLOW_TRACKING_PASSWORD_FILE"]["value"].startswith("/var/run/secrets/")
    script = container["command"][-1]
    assert "--tracking-uri https://mlflow:8443" in script
    ca = env["MLFLOW_TRACKING_SERVER_CERT_PATH"]["value"]
    assert env["SSL_CERT_FILE"]["value"] == ca
    (ca_volume,) = [v for v in pod["volumes"]
                    if v.get("secret", {}).get("secretName") == "lessdata-mlflow-tls"]
    assert ca_volume["secret"]["items"] == [{"key": "tls.crt", "path": "tls.crt"}]  # no key


def test_mlflow_is_served_over_tls_only(objects: dict[tuple[str, str], dict[str, Any]]) -> None:
    service = objects[("Service", "mlflow")]
    assert [p["port"] for p in service["spec"]["ports"]] == [8443]
    _, pod = _pod(objects, "mlflow")
    containers = {c["name"]: c for c in pod["containers"]}
    command = containers["mlflow"]["command"]
    assert "--host=127.0.0.1" in command  # plain HTTP stays inside the pod
    assert "--app-name=basic-auth" in command
    assert "--backend-store-uri=postgresql://mlflow@postgres:5432/mlflow" in command
    assert not containers["mlflow"].get("ports")
    conf = objects[("ConfigMap", "mlflow-tls-proxy")]["data"]["default.conf"]
    assert "listen 8443 ssl;" in conf and "proxy_pass http://127.0.0.1:5000;" in conf
    assert [p["containerPort"] for p in containers["tls-proxy"]["ports"]] == [8443]


# --- egress and ingress: a small NetworkPolicy evaluator ----------------------------------

def _matches(selector: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    if selector is None:
        return False
    assert set(selector) <= {"matchLabels"}, selector  # the manifests use matchLabels only
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


def _peer_allows(peer: dict[str, Any], target: dict[str, Any]) -> bool:
    if "ipBlock" in peer:
        if "ip" not in target:
            return False
        block = peer["ipBlock"]
        ip = ipaddress.ip_address(target["ip"])
        return ip in ipaddress.ip_network(block["cidr"]) and not any(
            ip in ipaddress.ip_network(e) for e in block.get("except", []))
    if "pod" not in target:
        return False  # a pod or namespace selector never matches a non-pod address
    ns_ok = (target["namespace"] == NAMESPACE if "namespaceSelector" not in peer
             else _matches(peer["namespaceSelector"],
                           {"kubernetes.io/metadata.name": target["namespace"]}))
    pod_ok = "podSelector" not in peer or _matches(peer["podSelector"], target["pod"])
    return ns_ok and pod_ok


def _port_allows(rule: dict[str, Any], port: int) -> bool:
    ports = rule.get("ports")
    return not ports or any(p.get("port") in (None, port) for p in ports)


def allowed(policies: list[dict[str, Any]], labels: dict[str, str], direction: str,
            target: dict[str, Any], port: int) -> bool:
    """Whether the policies let a pod with ``labels`` reach (or be reached by) ``target``."""
    kind = "Egress" if direction == "egress" else "Ingress"
    selecting = [p["spec"] for p in policies if kind in p["spec"]["policyTypes"]
                 and _matches(p["spec"]["podSelector"], labels)]
    if not selecting:
        return True  # Kubernetes: a pod no policy selects is not isolated
    key = "to" if direction == "egress" else "from"
    for spec in selecting:
        for rule in spec.get(direction, []):
            peers = rule.get(key)
            if _port_allows(rule, port) and (peers is None or any(
                    _peer_allows(peer, target) for peer in peers)):
                return True
    return False


def _policies(objects: dict[tuple[str, str], dict[str, Any]]) -> list[dict[str, Any]]:
    return [o for (kind, _), o in objects.items() if kind == "NetworkPolicy"]


def _target(objects: dict[tuple[str, str], dict[str, Any]], group: str) -> dict[str, Any]:
    labels, _ = _pod(objects, group)
    return {"pod": labels, "namespace": NAMESPACE}


DNS = {"pod": {"k8s-app": "kube-dns"}, "namespace": "kube-system"}
OTHER_NAMESPACE_POD = {"pod": {"app": "anything"}, "namespace": "default"}


@pytest.mark.parametrize("group", ["head", "gpu", "paper-data-step-mnist", "mlflow", "postgres"])
def test_no_pod_reaches_metadata_api_server_or_internet(
        objects: dict[tuple[str, str], dict[str, Any]], group: str) -> None:
    labels, _ = _pod(objects, group)
    policies = _policies(objects)
    for ip, port in [METADATA, *API_SERVER, *INTERNET]:
        assert not allowed(policies, labels, "egress", {"ip": ip}, port), (group, ip, port)
    assert not allowed(policies, labels, "egress", OTHER_NAMESPACE_POD, 443), group
    assert allowed(policies, labels, "egress", DNS, 53), group  # names still resolve


def test_ray_pods_reach_each_other_and_the_driver_only(
        objects: dict[tuple[str, str], dict[str, Any]]) -> None:
    policies = _policies(objects)
    for group in ("head", "gpu"):
        labels, _ = _pod(objects, group)
        for peer in ("head", "gpu", "paper-data-step-mnist"):
            target = _target(objects, peer)
            assert allowed(policies, labels, "egress", target, 6379), (group, peer)
            assert allowed(policies, labels, "ingress", target, 40000), (group, peer)
        for service, port in (("mlflow", 8443), ("postgres", 5432)):
            assert not allowed(policies, labels, "egress", _target(objects, service), port)


def test_only_the_driver_reaches_mlflow_and_only_mlflow_reaches_postgres(
        objects: dict[tuple[str, str], dict[str, Any]]) -> None:
    policies = _policies(objects)
    driver = _pod(objects, "paper-data-step-mnist")[0]
    mlflow = _pod(objects, "mlflow")[0]
    postgres = _pod(objects, "postgres")[0]
    assert allowed(policies, driver, "egress", _target(objects, "mlflow"), 8443)
    assert not allowed(policies, driver, "egress", _target(objects, "mlflow"), 5000)
    assert allowed(policies, mlflow, "ingress", _target(objects, "paper-data-step-mnist"), 8443)
    assert not allowed(policies, mlflow, "ingress", _target(objects, "gpu"), 8443)
    assert allowed(policies, mlflow, "egress", _target(objects, "postgres"), 5432)
    assert allowed(policies, postgres, "ingress", _target(objects, "mlflow"), 5432)
    for group in ("head", "gpu", "paper-data-step-mnist"):
        assert not allowed(policies, postgres, "ingress", _target(objects, group), 5432)


def test_the_evaluator_sees_an_open_egress_rule() -> None:
    # The evaluator itself: a wide ipBlock opens the metadata address unless excepted.
    pod = {"app": "x"}
    wide = {"spec": {"podSelector": {"matchLabels": pod}, "policyTypes": ["Egress"],
                     "egress": [{"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]}]}}
    assert allowed([wide], pod, "egress", {"ip": METADATA[0]}, 80)
    wide["spec"]["egress"][0]["to"][0]["ipBlock"]["except"] = ["169.254.169.254/32"]
    assert not allowed([wide], pod, "egress", {"ip": METADATA[0]}, 80)
    assert allowed([wide], pod, "egress", {"ip": "1.1.1.1"}, 443)
    assert allowed([], pod, "egress", {"ip": METADATA[0]}, 80)  # no policy: open


# --- pods, images, storage ---------------------------------------------------------------

def test_pods_run_unprivileged_with_read_only_roots(
        objects: dict[tuple[str, str], dict[str, Any]]) -> None:
    namespace = objects[("Namespace", NAMESPACE)]
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    for group, _, pod in _pods(objects):
        assert pod["securityContext"]["runAsNonRoot"] is True, group
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, group
        assert pod.get("automountServiceAccountToken") is False, group
        for container in _containers(pod):
            context = container["securityContext"]
            where = (group, container["name"])
            assert context["allowPrivilegeEscalation"] is False, where
            assert context["readOnlyRootFilesystem"] is True, where
            assert context["capabilities"] == {"drop": ["ALL"]}, where


def test_images_are_pinned_by_digest_or_set_at_deploy(
        objects: dict[tuple[str, str], dict[str, Any]]) -> None:
    for group, _, pod in _pods(objects):
        for container in _containers(pod):
            image = container["image"]
            assert image in OWN_IMAGES or DIGEST.match(image), (group, image)
    (kustomization,) = _docs(K8S / "kustomization.yaml")
    assert {i["name"] for i in kustomization["images"]} == OWN_IMAGES


def test_storage_separates_worker_output_from_driver_state(
        objects: dict[tuple[str, str], dict[str, Any]]) -> None:
    def claims(group: str) -> dict[str, tuple[str, bool]]:
        _, pod = _pod(objects, group)
        volumes = {v["name"]: v for v in pod["volumes"]}
        (container,) = pod["containers"]
        return {m["mountPath"]: (volumes[m["name"]]["persistentVolumeClaim"]["claimName"],
                                 bool(m.get("readOnly")))
                for m in container["volumeMounts"]
                if "persistentVolumeClaim" in volumes[m["name"]]}

    assert claims("gpu") == {"/shared": ("lessdata-shared", False),
                             "/data": ("lessdata-datasets", True)}
    assert claims("head") == {"/shared": ("lessdata-shared", False),
                              "/data": ("lessdata-datasets", False)}
    driver = claims("paper-data-step-mnist")
    assert driver["/var/lib/lessdata"] == ("lessdata-driver-state", False)
    users = [g for g, _, pod in _pods(objects)
             if any(v.get("persistentVolumeClaim", {}).get("claimName") == "lessdata-driver-state"
                    for v in pod.get("volumes", []))]
    assert users == ["paper-data-step-mnist"]
    assert objects[("PersistentVolumeClaim", "lessdata-shared")]["spec"]["accessModes"] == [
        "ReadWriteMany"]


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


def test_nothing_is_exposed_outside_the_cluster(
        objects: dict[tuple[str, str], dict[str, Any]]) -> None:
    for (kind, name), obj in objects.items():
        if kind == "Service":
            assert obj["spec"].get("type", "ClusterIP") == "ClusterIP", name
        assert kind not in ("Ingress", "Route"), name
    head = objects[("RayCluster", "lessdata")]["spec"]["headGroupSpec"]
    assert head.get("serviceType", "ClusterIP") == "ClusterIP"


def test_the_driver_job_joins_as_a_node_without_resources_and_submits(
        objects: dict[tuple[str, str], dict[str, Any]]) -> None:
    _, pod = _pod(objects, "paper-data-step-mnist")
    (container,) = pod["containers"]
    script = container["command"][-1]
    assert script.startswith("ray start --address=lessdata-head-svc:6379 --num-cpus=0 "
                             "--num-gpus=0")
    words = script.split()
    start = words.index("lessdata")
    assert words[start:start + 3] == ["lessdata", "submit", "paper-data-step"]
    assert words[words.index("--storage") + 1] == "/shared"
    assert "ray stop" in script and script.rstrip().endswith("exit $status")
