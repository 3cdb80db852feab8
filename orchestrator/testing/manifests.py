"""What ``kubectl apply -k deploy/k8s`` would run, as local processes: the rendered manifests,
the image's runtime settings, each pod's argv and environment, and the few substitutions one
machine forces.

Shared by the deployment tests and ``ksaga local`` (the operator's stand-in for a cluster), so
both start exactly what the manifests say and nothing hand-copied. ``localise`` is the one place
a local process is allowed to differ from the container, and it names each difference and why.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.testing.dockerfile import ImageConfig, read_dockerfile
from orchestrator.testing.kafka_cluster import project_root
from orchestrator.testing.kustomize import render
from orchestrator.testing.pods import (
    ContainerProcess,
    PodError,
    find,
    pod_spec,
    resolve_container,
)

__all__ = ["JOB", "K8S", "STATEFULSET", "Deployment", "load_deployment", "localise"]

K8S = project_root() / "deploy" / "k8s"
STATEFULSET = "ksaga-orchestrator"
JOB = "ksaga-topics-create"


@dataclass(frozen=True)
class Deployment:
    """What ``kubectl apply -k deploy/k8s`` would create, and the image it runs."""

    objects: list[dict[str, Any]]
    image: ImageConfig

    def get(self, kind: str, name: str) -> dict[str, Any]:
        return find(self.objects, kind, name)

    @property
    def statefulset(self) -> dict[str, Any]:
        return self.get("StatefulSet", STATEFULSET)

    @property
    def job(self) -> dict[str, Any]:
        return self.get("Job", JOB)

    def container(self, workload: dict[str, Any]) -> dict[str, Any]:
        (container,) = pod_spec(workload)["containers"]
        result: dict[str, Any] = container
        return result

    def replica(self, ordinal: int) -> ContainerProcess:
        """Pod ``<statefulset>-<ordinal>``'s process, as the kubelet would start it."""
        return resolve_container(
            self.container(self.statefulset),
            self.image,
            self.objects,
            pod_name=f"{STATEFULSET}-{ordinal}",
            namespace=self.statefulset["metadata"]["namespace"],
        )

    def topics_job(self) -> ContainerProcess:
        return resolve_container(
            self.container(self.job),
            self.image,
            self.objects,
            pod_name=f"{JOB}-x7k2p",  # a Job's pods get a random suffix
            namespace=self.job["metadata"]["namespace"],
        )


def load_deployment(directory: Path = K8S) -> Deployment:
    return Deployment(render(directory), read_dockerfile(directory / "Dockerfile"))


def localise(
    process: ContainerProcess,
    bootstrap: str,
    http_port: int | None = None,
    state_dir: Path | None = None,
) -> dict[str, str]:
    """The container's environment with the only substitutions one machine forces."""
    env = dict(process.env)
    venv_bin = Path(sys.executable).parent
    if "PATH" not in env or not (venv_bin / "ksaga").is_file():
        raise PodError(f"the image sets no PATH, or {venv_bin} has no `ksaga` console script")
    # PATH: the image installs the project into /opt/ksaga (its `ksaga` console script on PATH);
    # here the same project is pip-installed into this venv. The argv stays `ksaga ...`.
    image_bin = env["PATH"].split(":")[0]
    env["PATH"] = env["PATH"].replace(image_bin, str(venv_bin), 1)
    # The Kafka address: the ConfigMap names the cluster's bootstrap Service.
    _require(env, "KSAGA_BOOTSTRAP_SERVERS")
    env["KSAGA_BOOTSTRAP_SERVERS"] = bootstrap
    if http_port is not None:
        # The probe port: each pod has its own IP and serves on 8080; local processes share one
        # network namespace, so each gets a free port.
        _require(env, "KSAGA_HTTP_PORT")
        env["KSAGA_HTTP_PORT"] = str(http_port)
    if state_dir is not None:
        # The store: each pod mounts its own volume at /var/lib/ksaga, which is not ours here.
        _require(env, "KSAGA_STATE_DIR")
        env["KSAGA_STATE_DIR"] = str(state_dir)
    return env


def _require(env: dict[str, str], name: str) -> None:
    if name not in env:
        raise PodError(f"the rendered container sets no {name}: nothing to substitute")
