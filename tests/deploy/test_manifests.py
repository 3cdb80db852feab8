"""``deploy/k8s``: every object valid for Kubernetes (offline schemas), and the pieces agreeing.

The schemas say a manifest is well formed; the consistency checks say it does what the README
claims: the image's command is the StatefulSet's, probes hit the endpoints the replica serves on
the port it is told, the grace period outlasts a batch, autoscaling stops at the partition count,
and every KSAGA_* variable is one the replica knows and accepts.
"""

from __future__ import annotations

import copy
import os
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
from kubernetes_validate.utils import latest_version

from orchestrator.config import Settings, load_settings
from orchestrator.testing.pods import pod_spec
from tests.deploy.conftest import STATEFULSET, Deployment
from tests.deploy.keda_schema import validate_scaled_object

# The oldest Kubernetes the manifests are meant for (persistentVolumeClaimRetentionPolicy is on
# by default from 1.27) and the newest whose schemas kubernetes-validate ships.
VERSIONS = ("1.29.0", latest_version())
KEDA = "keda.sh/v1alpha1"


def built_in(deployment: Deployment) -> list[dict[str, Any]]:
    return [o for o in deployment.objects if o["apiVersion"] != KEDA]


@pytest.mark.parametrize("version", VERSIONS)
def test_every_built_in_object_validates_strictly(deployment: Deployment, version: str) -> None:
    kinds = set()
    for obj in built_in(deployment):
        kubernetes_validate.validate(obj, version, strict=True)
        kinds.add(obj["kind"])
    assert kinds == {"ConfigMap", "Secret", "Service", "StatefulSet", "PodDisruptionBudget", "Job"}


@pytest.mark.parametrize("version", VERSIONS)
def test_the_scaled_object_validates_against_the_keda_schema(
    deployment: Deployment, version: str
) -> None:
    validate_scaled_object(deployment.get("ScaledObject", STATEFULSET), version)


def test_the_schemas_reject_a_misspelt_field(deployment: Deployment) -> None:
    """Strict validation really is strict: a typo is an error, not a silently pruned field."""
    statefulset = copy.deepcopy(deployment.statefulset)
    pod_spec(statefulset)["terminationGracePeriod"] = 60
    with pytest.raises(jsonschema.ValidationError, match="terminationGracePeriod"):
        kubernetes_validate.validate(statefulset, VERSIONS[-1], strict=True)
    scaled = copy.deepcopy(deployment.get("ScaledObject", STATEFULSET))
    scaled["spec"]["maxReplicas"] = 12
    with pytest.raises(jsonschema.ValidationError, match="maxReplicas"):
        validate_scaled_object(scaled, VERSIONS[-1])
    scaled = copy.deepcopy(deployment.get("ScaledObject", STATEFULSET))
    scaled["spec"]["triggers"][0]["metadata"]["lagTreshold"] = "5"
    with pytest.raises(jsonschema.ValidationError, match="lagTreshold"):
        validate_scaled_object(scaled, VERSIONS[-1])


def replica_settings(deployment: Deployment, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The settings replica 0 would load from its container environment."""
    for key in [k for k in os.environ if k.startswith("KSAGA_")]:
        monkeypatch.delenv(key)
    for key, value in deployment.replica(0).env.items():
        monkeypatch.setenv(key, value)
    return load_settings()


def test_every_ksaga_variable_is_a_setting_the_replica_accepts(
    deployment: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    known = {f"KSAGA_{name.upper()}" for name in Settings.model_fields}
    for process in (deployment.replica(0), deployment.topics_job()):
        ours = {k for k in process.env if k.startswith("KSAGA_")}
        assert ours - known == set(), "unknown KSAGA_* variables are ignored silently: typo?"
    settings = replica_settings(deployment, monkeypatch)
    assert settings.replica_id == "ksaga-orchestrator-0"  # the pod name, via the downward API
    assert settings.partitions is not None
    assert settings.http_port > 0


def test_the_image_runs_what_the_manifests_run(deployment: Deployment) -> None:
    image = deployment.image
    assert image.entrypoint == ["ksaga"]
    assert image.cmd == ["run"]  # `docker run ksaga` is a replica
    assert deployment.replica(0).argv == ["ksaga", "run"]
    assert deployment.topics_job().argv == ["ksaga", "topics", "create"]
    assert image.env["PATH"].split(":")[0] == "/opt/ksaga/bin"  # where the venv's ksaga lives


def test_the_image_and_the_pods_run_as_the_same_non_root_user(deployment: Deployment) -> None:
    uid, _, gid = deployment.image.user.partition(":")
    assert uid.isdigit()
    assert int(uid) != 0
    for workload in (deployment.statefulset, deployment.job):
        security = pod_spec(workload)["securityContext"]
        assert security["runAsNonRoot"] is True
        assert (security["runAsUser"], security["runAsGroup"]) == (int(uid), int(gid))
        container = deployment.container(workload)["securityContext"]
        assert container["allowPrivilegeEscalation"] is False
        assert container["readOnlyRootFilesystem"] is True


def test_probes_hit_the_replica_endpoints_on_the_port_it_serves(
    deployment: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = replica_settings(deployment, monkeypatch)
    container = deployment.container(deployment.statefulset)
    (port,) = container["ports"]
    assert (port["name"], port["containerPort"]) == ("http", settings.http_port)
    assert settings.http_port in deployment.image.exposed
    probes = {
        kind: (container[kind]["httpGet"]["path"], container[kind]["httpGet"]["port"])
        for kind in ("readinessProbe", "livenessProbe", "startupProbe")
    }
    assert probes == {
        "readinessProbe": ("/ready", "http"),
        "livenessProbe": ("/live", "http"),
        "startupProbe": ("/live", "http"),
    }
    annotations = deployment.statefulset["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(settings.http_port)
    assert annotations["prometheus.io/path"] == "/metrics"
    (service_port,) = deployment.get("Service", STATEFULSET)["spec"]["ports"]
    assert service_port["targetPort"] == "http"


def test_the_grace_period_outlasts_the_longest_batch(
    deployment: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch's transaction cannot outlive the transaction timeout (the broker aborts it)."""
    settings = replica_settings(deployment, monkeypatch)
    grace = pod_spec(deployment.statefulset)["terminationGracePeriodSeconds"]
    assert grace > settings.transaction_timeout_ms / 1000
    # The liveness probe gives the loop its whole timeout, plus the kubelet's own failures.
    assert settings.liveness_timeout_s > settings.previous_owner_wait_s


def test_autoscaling_follows_the_group_lag_up_to_the_partition_count(
    deployment: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = replica_settings(deployment, monkeypatch)
    scaled = deployment.get("ScaledObject", STATEFULSET)["spec"]
    assert scaled["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "name": STATEFULSET,
    }
    assert scaled["maxReplicaCount"] == settings.partitions
    assert scaled["minReplicaCount"] >= 1  # timers need a live owner: never scale to zero
    assert deployment.statefulset["spec"]["replicas"] <= (settings.partitions or 0)
    (trigger,) = scaled["triggers"]
    assert trigger["type"] == "kafka"
    lag = trigger["metadata"]
    assert lag["consumerGroup"] == settings.group_id
    assert lag["topic"] == settings.topics.inbox
    assert lag["bootstrapServers"] == settings.bootstrap_servers
    assert lag["allowIdleConsumers"] == "false"
    assert lag["offsetResetPolicy"] == "earliest"  # as the replicas' consumer


def test_selectors_pick_the_replica_pods(deployment: Deployment) -> None:
    statefulset = deployment.statefulset
    labels = statefulset["spec"]["template"]["metadata"]["labels"]
    selectors = [
        statefulset["spec"]["selector"]["matchLabels"],
        deployment.get("PodDisruptionBudget", STATEFULSET)["spec"]["selector"]["matchLabels"],
        deployment.get("Service", STATEFULSET)["spec"]["selector"],
    ]
    for selector in selectors:
        assert selector.items() <= labels.items()
    job_labels = deployment.job["spec"]["template"]["metadata"]["labels"]
    assert not all(selector.items() <= job_labels.items() for selector in selectors)
    service = deployment.get("Service", STATEFULSET)["spec"]
    assert statefulset["spec"]["serviceName"] == STATEFULSET
    assert service["clusterIP"] == "None"  # scrape every pod, not a load-balanced address
    assert deployment.get("PodDisruptionBudget", STATEFULSET)["spec"]["maxUnavailable"] == 1


def test_the_store_lives_on_the_replica_volume(deployment: Deployment) -> None:
    state_dir = deployment.replica(0).env["KSAGA_STATE_DIR"]
    assert state_dir == deployment.image.env["KSAGA_STATE_DIR"]
    container = deployment.container(deployment.statefulset)
    (claim,) = deployment.statefulset["spec"]["volumeClaimTemplates"]
    volume = claim["metadata"]["name"]
    mounts = [m["mountPath"] for m in container["volumeMounts"] if m["name"] == volume]
    assert len(mounts) == 1
    assert state_dir.startswith(mounts[0] + "/")


def test_everything_lands_in_one_namespace(deployment: Deployment) -> None:
    assert {o["metadata"]["namespace"] for o in deployment.objects} == {"ksaga"}
    images = {deployment.container(w)["image"] for w in (deployment.statefulset, deployment.job)}
    assert images == {"ksaga:0.1.0"}
