"""The rendered ``deploy/k8s`` manifests and the image's runtime settings, shared by the tests."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from orchestrator.testing.dockerfile import ImageConfig, read_dockerfile
from orchestrator.testing.kustomize import render
from orchestrator.testing.pods import ContainerProcess, find, pod_spec, resolve_container

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
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


def load_deployment() -> Deployment:
    return Deployment(render(K8S), read_dockerfile(K8S / "Dockerfile"))


@pytest.fixture(scope="module")
def deployment() -> Deployment:
    return load_deployment()
