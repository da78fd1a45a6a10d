"""deploy/kubernetes/: valid against the Kubernetes schema, least privilege, flags that exist."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from exporter.config import flag_name, leaves

kubernetes_validate = pytest.importorskip("kubernetes_validate")  # the `test` extra installs it

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes"
FILES = sorted(DEPLOY.glob("*.yaml"))
DOCS = [(path.name, doc) for path in FILES for doc in yaml.safe_load_all(path.read_text()) if doc]
SCHEMA_VERSION = "1.33"  # a Kubernetes version still in support that the bundled schemas cover


def by_kind(kind: str) -> list[dict[str, Any]]:
    return [doc for _, doc in DOCS if doc["kind"] == kind]


def test_the_manifest_set_is_complete() -> None:
    assert [p.name for p in FILES] == ["clusterrole.yaml", "daemonset.yaml", "deployment.yaml", "role.yaml",
                                       "serviceaccount.yaml"]
    assert sorted(doc["kind"] for _, doc in DOCS) == sorted([
        "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "Deployment", "DaemonSet"])


@pytest.mark.parametrize(("name", "doc"), DOCS, ids=[f"{n}:{d['kind']}" for n, d in DOCS])
def test_every_manifest_validates_strictly_against_the_kubernetes_schema(name: str, doc: dict[str, Any]) -> None:
    kubernetes_validate.validate(doc, SCHEMA_VERSION, strict=True)  # raises ValidationError


def test_the_validator_rejects_an_unknown_field() -> None:
    (deployment,) = by_kind("Deployment")
    broken = yaml.safe_load(yaml.safe_dump(deployment))
    broken["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, SCHEMA_VERSION, strict=True)


@pytest.mark.parametrize("kind", ["ClusterRole", "Role"])
def test_rbac_grants_exactly_get_list_watch_on_pods(kind: str) -> None:
    (role,) = by_kind(kind)
    assert role["rules"] == [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}]


def test_bindings_tie_the_roles_to_the_service_account() -> None:
    (account,) = by_kind("ServiceAccount")
    subject = {"kind": "ServiceAccount", "name": account["metadata"]["name"],
               "namespace": account["metadata"]["namespace"]}
    for binding_kind, role_kind in (("ClusterRoleBinding", "ClusterRole"), ("RoleBinding", "Role")):
        (binding,) = by_kind(binding_kind)
        (role,) = by_kind(role_kind)
        assert binding["subjects"] == [subject]
        assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind,
                                      "name": role["metadata"]["name"]}
        if role_kind == "Role":
            assert binding["metadata"]["namespace"] == role["metadata"]["namespace"]


@pytest.mark.parametrize("kind", ["Deployment", "DaemonSet"])
def test_workloads_run_least_privileged_with_probes_on_the_exporter_port(kind: str) -> None:
    (workload,) = by_kind(kind)
    pod = workload["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert pod["serviceAccountName"] == by_kind("ServiceAccount")[0]["metadata"]["name"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    context = container["securityContext"]
    assert context["readOnlyRootFilesystem"] is True and context["allowPrivilegeEscalation"] is False
    assert context["capabilities"]["drop"] == ["ALL"]
    assert container["ports"][0]["containerPort"] == 10099
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert not any("hostPath" in v for v in pod.get("volumes", []))
    flags = {flag_name(path) for path, _, _ in leaves()}
    for arg in container["args"]:
        assert arg.split("=", 1)[0] in flags, arg
    assert "--kubernetes.enabled=true" in container["args"]


def test_daemonset_watches_only_its_node_from_the_downward_api() -> None:
    (daemonset,) = by_kind("DaemonSet")
    (container,) = daemonset["spec"]["template"]["spec"]["containers"]
    assert "--kubernetes.node=$(NODE_NAME)" in container["args"]
    (env,) = [e for e in container["env"] if e["name"] == "NODE_NAME"]
    assert env["valueFrom"] == {"fieldRef": {"fieldPath": "spec.nodeName"}}
    (deployment,) = by_kind("Deployment")
    assert not any(a.startswith("--kubernetes.node") for a in deployment["spec"]["template"]["spec"]["containers"][0]["args"])
