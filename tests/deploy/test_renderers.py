"""The small renderers the deployment tests stand on: kustomize, the kubelet's env/argv, Docker.

Each implements only what ``deploy/k8s`` uses and refuses the rest; these tests pin the rules
(against the real ``kubectl kustomize`` where kubectl is installed) and the refusals.
"""

from __future__ import annotations

import base64
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from orchestrator.testing.dockerfile import DockerfileError, ImageConfig, read_dockerfile
from orchestrator.testing.kustomize import KustomizeError, render
from orchestrator.testing.pods import PodError, expand, resolve_container
from tests.deploy.conftest import K8S


def _key(obj: dict[str, Any]) -> tuple[str, str]:
    return obj["kind"], obj["metadata"]["name"]


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed here")
def test_the_renderer_agrees_with_kubectl_kustomize() -> None:
    done = subprocess.run(
        ["kubectl", "kustomize", str(K8S)], capture_output=True, text=True, timeout=120, check=True
    )
    theirs = sorted(yaml.safe_load_all(done.stdout), key=_key)
    ours = sorted(render(K8S), key=_key)
    assert [_key(o) for o in ours] == [_key(o) for o in theirs]
    assert ours == theirs


def test_the_renderer_refuses_features_it_does_not_implement(tmp_path: Path) -> None:
    (tmp_path / "cm.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n")
    (tmp_path / "kustomization.yaml").write_text(
        "resources: [cm.yaml]\nnamePrefix: prod-\ncommonLabels: {a: b}\n"
    )
    with pytest.raises(KustomizeError, match="commonLabels, namePrefix"):
        render(tmp_path)


def test_images_namespace_and_multi_document_resources(tmp_path: Path) -> None:
    (tmp_path / "all.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\n"
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: r}\n---\n"
        "apiVersion: batch/v1\nkind: Job\nmetadata: {name: j}\nspec:\n  template:\n    spec:\n"
        "      initContainers: [{name: i, image: 'ksaga:old'}]\n"
        "      containers: [{name: c, image: 'reg:5000/other:1'}, {name: d, image: ksaga}]\n"
    )
    (tmp_path / "kustomization.yaml").write_text(
        "namespace: ns\nresources: [all.yaml]\n"
        "images: [{name: ksaga, newName: reg.example/ksaga, newTag: '2'}]\n"
    )
    config_map, role, job = render(tmp_path)
    assert config_map["metadata"]["namespace"] == "ns"
    assert "namespace" not in role["metadata"]  # cluster-scoped
    pod = job["spec"]["template"]["spec"]
    assert pod["initContainers"][0]["image"] == "reg.example/ksaga:2"
    assert [c["image"] for c in pod["containers"]] == ["reg:5000/other:1", "reg.example/ksaga:2"]


OBJECTS: list[dict[str, Any]] = [
    {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"},
     "data": {"A": "from-cm", "B": "from-cm", "HOST": "kafka:9092"}},
    {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
     "data": {"B": base64.b64encode(b"from-secret").decode()}, "stringData": {"C": "plain"}},
]  # fmt: skip
IMAGE = ImageConfig(entrypoint=["app"], cmd=["serve"], env={"A": "from-image", "Z": "image"})


def resolve(container: dict[str, Any]) -> tuple[list[str], dict[str, str]]:
    done = resolve_container(container, IMAGE, OBJECTS, pod_name="p-0", namespace="ns")
    return done.argv, done.env


def test_environment_precedence_image_then_env_from_then_env() -> None:
    argv, env = resolve(
        {
            "name": "c",
            "envFrom": [{"configMapRef": {"name": "cm"}}, {"secretRef": {"name": "s"}}],
            "env": [
                {"name": "C", "value": "env wins over $(A) and $$(A), keeps $(UNSET)"},
                {"name": "ME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                {"name": "K", "valueFrom": {"secretKeyRef": {"name": "s", "key": "B"}}},
                {
                    "name": "O",
                    "valueFrom": {"configMapKeyRef": {"optional": True, "name": "x", "key": "y"}},
                },
            ],
        }
    )
    assert argv == ["app", "serve"]
    assert env == {
        "A": "from-cm",
        "B": "from-secret",
        "C": "env wins over from-cm and $(A), keeps $(UNSET)",
        "HOST": "kafka:9092",
        "ME": "p-0",
        "K": "from-secret",
        "Z": "image",
        "HOSTNAME": "p-0",
    }


def test_command_and_args_follow_the_kubernetes_rules() -> None:
    assert resolve({"name": "c", "args": ["x", "$(Z)"]})[0] == ["app", "x", "image"]
    assert resolve({"name": "c", "command": ["sh"]})[0] == ["sh"]
    assert resolve({"name": "c", "command": ["sh"], "args": ["-c"]})[0] == ["sh", "-c"]
    assert expand("$(A)$$$(A)$", {"A": "1"}) == "1$1$"


def test_references_the_cluster_would_fail_are_refused() -> None:
    with pytest.raises(PodError, match="no ConfigMap named 'missing'"):
        resolve({"name": "c", "envFrom": [{"configMapRef": {"name": "missing"}}]})
    with pytest.raises(PodError, match="not implemented"):
        resolve({"name": "c", "env": [
            {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}]})  # fmt: skip
    assert "X" not in resolve(
        {"name": "c", "envFrom": [{"secretRef": {"name": "missing", "optional": True}}],
         "env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "s", "key": "nope",
                                                            "optional": True}}}]}
    )[1]  # fmt: skip


def test_the_dockerfile_reader_takes_the_final_stage_and_refuses_shell_form(
    tmp_path: Path,
) -> None:
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text(
        'ARG V=1\nFROM base AS build\nENV BUILD=1\nCMD ["build"]\n'
        'FROM base\n# a comment\nENV A=1 \\\n    B="two words"\nUSER 7:7\nEXPOSE 80/tcp 81\n'
        'ENTRYPOINT ["app"]\n'
    )
    image = read_dockerfile(dockerfile)
    assert image == ImageConfig(["app"], [], {"A": "1", "B": "two words"}, "7:7", "", [80, 81])
    dockerfile.write_text("FROM base\nENTRYPOINT ksaga run\n")
    with pytest.raises(DockerfileError, match="exec form"):
        read_dockerfile(dockerfile)
    dockerfile.write_text("FROM base\nENV PATH=/x:$PATH\n")
    with pytest.raises(DockerfileError, match="refers to a variable"):
        read_dockerfile(dockerfile)
