"""The rendered ``deploy/k8s`` manifests and the image's runtime settings, shared by the tests.

The rendering lives in ``orchestrator.testing.manifests`` (``ksaga local`` runs the same pods).
"""

from __future__ import annotations

import pytest

from orchestrator.testing.manifests import (
    JOB,
    K8S,
    STATEFULSET,
    Deployment,
    load_deployment,
)

__all__ = ["JOB", "K8S", "ROOT", "STATEFULSET", "Deployment", "deployment", "load_deployment"]

ROOT = K8S.parents[1]


@pytest.fixture(scope="module")
def deployment() -> Deployment:
    return load_deployment()
