"""deploy/kubernetes/: each overlay is one `kubectl apply -k`, renders with kubectl's kustomize to
manifests valid against the Kubernetes schema, runs exactly one workload, least privilege."""
from __future__ import annotations

import re

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from exporter.config import flag_name, leaves
from tests.harness import require_binary
from tests.readme import shell_blocks

ROOT = Path(__file__).resolve().parents[2]
KUBE = ROOT / "deploy" / "kubernetes"
OVERLAYS = ["cluster", "node", "namespaced"]
WORKLOAD_KINDS = {"Deployment", "DaemonSet", "StatefulSet", "ReplicaSet", "ReplicationController", "Pod", "Job",
                  "CronJob"}
OPERATOR_KINDS = {"PodMonitor", "PrometheusRule"}  # Prometheus Operator CRDs: no schema in kubernetes-validate
SCHEMA_VERSION = "1.33"  # a Kubernetes version still in support that the bundled schemas cover


def kustomize(directory: Path) -> list[dict[str, Any]]:
    """`kubectl kustomize DIR`, as `kubectl apply -k DIR` would send it (Debian's kubectl 1.20 or newer)."""
    result = subprocess.run([require_binary("kubectl"), "kustomize", str(directory)], capture_output=True, text=True,
                            timeout=120, cwd=directory.parent)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[dict[str, Any]]]:
    return {overlay: kustomize(KUBE / overlay) for overlay in OVERLAYS}


def only(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    (doc,) = [d for d in docs if d["kind"] == kind]
    return doc


def workload(docs: list[dict[str, Any]]) -> dict[str, Any]:
    (doc,) = [d for d in docs if d["kind"] in WORKLOAD_KINDS]
    return doc


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_overlay_renders_valid_manifests_with_exactly_one_workload(
        rendered: dict[str, list[dict[str, Any]]], overlay: str) -> None:
    docs = rendered[overlay]
    for doc in docs:
        if doc["kind"] not in OPERATOR_KINDS:
            kubernetes_validate.validate(doc, SCHEMA_VERSION, strict=True)  # raises ValidationError
    assert [d["kind"] for d in docs if d["kind"] in WORKLOAD_KINDS] == [
        {"cluster": "Deployment", "node": "DaemonSet", "namespaced": "Deployment"}[overlay]]
    assert {d["kind"] for d in docs} >= {"ServiceAccount", "PodMonitor", "PrometheusRule"}
    namespaces = {d["metadata"].get("namespace") for d in docs if d["kind"] not in {"Namespace", "ClusterRole",
                                                                                   "ClusterRoleBinding"}}
    assert namespaces == {"default" if overlay == "namespaced" else "monitoring"}
    if overlay != "namespaced":  # the monitoring namespace comes with the apply; a watched one already exists
        assert only(docs, "Namespace")["metadata"]["name"] == "monitoring"
    else:
        assert not [d for d in docs if d["kind"] in {"Namespace", "ClusterRole", "ClusterRoleBinding"}]


def test_the_validator_rejects_an_unknown_field(rendered: dict[str, list[dict[str, Any]]]) -> None:
    broken = yaml.safe_load(yaml.safe_dump(workload(rendered["cluster"])))
    broken["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, SCHEMA_VERSION, strict=True)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_rbac_grants_exactly_get_list_watch_on_pods_to_the_service_account(
        rendered: dict[str, list[dict[str, Any]]], overlay: str) -> None:
    docs = rendered[overlay]
    role_kind = "Role" if overlay == "namespaced" else "ClusterRole"
    role, binding, account = only(docs, role_kind), only(docs, f"{role_kind}Binding"), only(docs, "ServiceAccount")
    assert role["rules"] == [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": account["metadata"]["name"],
                                    "namespace": account["metadata"]["namespace"]}]
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind,
                                  "name": role["metadata"]["name"]}
    assert workload(docs)["spec"]["template"]["spec"]["serviceAccountName"] == account["metadata"]["name"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_workloads_run_least_privileged_with_probes_and_real_flags(
        rendered: dict[str, list[dict[str, Any]]], overlay: str) -> None:
    pod = workload(rendered[overlay])["spec"]["template"]["spec"]
    (container,) = pod["containers"]
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


def test_node_mode_watches_its_node_and_namespaced_mode_its_namespace(
        rendered: dict[str, list[dict[str, Any]]]) -> None:
    def container(overlay: str) -> dict[str, Any]:
        return workload(rendered[overlay])["spec"]["template"]["spec"]["containers"][0]

    node = container("node")
    assert "--kubernetes.node=$(NODE_NAME)" in node["args"]
    assert {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}} in node["env"]
    assert not any(a.startswith("--kubernetes.node") for a in container("cluster")["args"] + container("namespaced")["args"])
    watched = {"name": "RESILIENCE_EXPORTER_KUBERNETES_NAMESPACES",
               "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}}
    assert watched in container("namespaced")["env"] and watched not in container("cluster")["env"]


def test_the_namespace_is_a_parameter_of_the_namespaced_overlay(tmp_path: Path) -> None:
    mine = tmp_path / "shop"
    mine.mkdir()
    base = os.path.relpath(KUBE / "namespaced", mine)  # kustomize 2 (kubectl 1.20) refuses absolute bases
    (mine / "kustomization.yaml").write_text(f"namespace: shop\nbases: [{base}]\n")
    docs = kustomize(mine)
    assert {d["metadata"]["namespace"] for d in docs} == {"shop"}
    assert only(docs, "RoleBinding")["subjects"][0]["namespace"] == "shop"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_pod_monitor_scrapes_the_workload_as_the_job_the_alerts_expect(
        rendered: dict[str, list[dict[str, Any]]], overlay: str) -> None:
    monitor = only(rendered[overlay], "PodMonitor")
    template = workload(rendered[overlay])["spec"]["template"]
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["spec"]["selector"]["matchLabels"].items() <= template["metadata"]["labels"].items()
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    assert endpoint["port"] in {p["name"] for p in template["spec"]["containers"][0]["ports"]}
    job = template["metadata"]["labels"][monitor["spec"]["jobLabel"]]
    # the alert pack's exporter selector (default job=~".*resilience.*") must select that job
    match = re.search(r'up\{job(=~|=)"([^"]*)"\}', (ROOT / "alerts" / "exporter.rules.yml").read_text())
    assert match, "exporter.rules.yml selects up by job"
    operator, value = match.groups()
    assert re.fullmatch(value, job) if operator == "=~" else value == job, (job, match.group(0))


def test_the_prometheus_rule_is_a_fresh_render_of_the_alert_files(rendered: dict[str, list[dict[str, Any]]]) -> None:
    check = subprocess.run([sys.executable, str(KUBE / "prometheusrule.py"), "--check"], capture_output=True,
                           text=True, timeout=60)
    assert check.returncode == 0, check.stderr
    groups = [group for path in sorted((ROOT / "alerts").glob("*.rules.yml"))
              for group in yaml.safe_load(path.read_text())["groups"]]
    for overlay in OVERLAYS:
        assert only(rendered[overlay], "PrometheusRule")["spec"]["groups"] == groups


def test_the_prometheus_rule_check_fails_on_a_hand_edit(tmp_path: Path) -> None:
    sys.path.insert(0, str(KUBE))
    try:
        import prometheusrule
    finally:
        sys.path.remove(str(KUBE))
    edited = prometheusrule.render().replace("for: 5m", "for: 6m", 1)
    assert edited != prometheusrule.render()
    target = tmp_path / "prometheusrule.yaml"
    target.write_text(edited)
    assert prometheusrule.main(["--check"], target) == 1
    assert prometheusrule.main([], target) == 0 and prometheusrule.main(["--check"], target) == 0


def test_the_prometheus_rule_spec_passes_promtool(rendered: dict[str, list[dict[str, Any]]], tmp_path: Path) -> None:
    promtool = require_binary("promtool")
    rules = tmp_path / "rules.yml"
    rules.write_text(yaml.safe_dump({"groups": only(rendered["cluster"], "PrometheusRule")["spec"]["groups"]}))
    result = subprocess.run([promtool, "check", "rules", str(rules)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_readme_kubernetes_blocks_render_one_workload_per_apply(tmp_path: Path) -> None:
    """README "Kubernetes" as written, in a copy of deploy/, with `kubectl kustomize` standing in
    for `kubectl apply -k` (there is no cluster here): each apply is one workload."""
    shutil.copytree(KUBE, tmp_path / "deploy" / "kubernetes")
    shim = tmp_path / "bin" / "kubectl"
    shim.parent.mkdir()
    shim.write_text('#!/bin/sh\n[ "$1 $2" = "apply -k" ] || exit 64\n'
                    f'exec {require_binary("kubectl")} kustomize "$3" > "$RENDERED/$(basename "$3").yaml"\n')
    shim.chmod(0o755)
    rendered = tmp_path / "rendered"
    rendered.mkdir()
    env = {**os.environ, "PATH": f"{shim.parent}:{os.environ['PATH']}", "RENDERED": str(rendered)}
    for block in shell_blocks("Kubernetes"):
        result = subprocess.run(["bash", "-euo", "pipefail", "-c", block], cwd=tmp_path, env=env,
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
    applied = {path.stem: [d for d in yaml.safe_load_all(path.read_text()) if d] for path in rendered.iterdir()}
    assert sorted(applied) == ["cluster", "my-exporter", "node"]
    for docs in applied.values():
        assert len([d for d in docs if d["kind"] in WORKLOAD_KINDS]) == 1
    assert {d["metadata"]["namespace"] for d in applied["my-exporter"]} == {"shop"}
