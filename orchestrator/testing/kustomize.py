"""Render a kustomization the way ``kustomize build`` does, for exactly the features ksaga uses.

There is no kustomize binary on the project's machines and no Python package that runs the real
one, so the tests render ``deploy/k8s`` with this: ``resources`` (files, in order, each possibly
holding several YAML documents), ``namespace`` (set on every namespaced object) and ``images``
(``newName``/``newTag``/``digest`` on the containers of pod templates). Any other key of the
kustomization is refused with a message naming it, rather than silently ignored: a manifest
change that needs more must extend this renderer and its test against ``kubectl kustomize``.

What it never does: fetch remote bases, run generators or plugins, or touch a cluster.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

__all__ = ["CLUSTER_SCOPED", "KustomizeError", "render"]

SUPPORTED = frozenset({"apiVersion", "kind", "namespace", "resources", "images"})
# Kinds kustomize leaves without a namespace (the ones that exist in ksaga's world).
CLUSTER_SCOPED = frozenset(
    {
        "Namespace",
        "ClusterRole",
        "ClusterRoleBinding",
        "CustomResourceDefinition",
        "PersistentVolume",
        "StorageClass",
        "PriorityClass",
    }
)


class KustomizeError(Exception):
    """The kustomization uses something this renderer does not implement, or is malformed."""


def render(directory: Path) -> list[dict[str, Any]]:
    """The objects ``kustomize build directory`` would print, in resource order."""
    spec = _load_kustomization(directory)
    unknown = sorted(set(spec) - SUPPORTED)
    if unknown:
        raise KustomizeError(
            f"{directory}/kustomization.yaml uses {', '.join(unknown)}: not implemented by"
            " orchestrator/testing/kustomize.py; implement it there (and compare with"
            " `kubectl kustomize`) or keep the kustomization to resources/namespace/images"
        )
    objects: list[dict[str, Any]] = []
    for entry in spec.get("resources", []):
        path = directory / entry
        if not path.is_file():
            raise KustomizeError(f"resource {entry!r} is not a file in {directory}")
        objects.extend(_documents(path))
    namespace = spec.get("namespace")
    images = spec.get("images", [])
    for obj in objects:
        if namespace and obj.get("kind") not in CLUSTER_SCOPED:
            obj.setdefault("metadata", {})["namespace"] = namespace
        for container in _containers(obj):
            container["image"] = _retag(container.get("image", ""), images)
    return objects


def _load_kustomization(directory: Path) -> dict[str, Any]:
    path = directory / "kustomization.yaml"
    if not path.is_file():
        raise KustomizeError(f"no kustomization.yaml in {directory}")
    spec = yaml.safe_load(path.read_text())
    if not isinstance(spec, dict):
        raise KustomizeError(f"{path} is not a mapping")
    return spec


def _documents(path: Path) -> Iterator[dict[str, Any]]:
    for doc in yaml.safe_load_all(path.read_text()):
        if doc is None:
            continue
        if not isinstance(doc, dict) or "kind" not in doc or "apiVersion" not in doc:
            raise KustomizeError(f"{path}: every document must be an object with apiVersion/kind")
        yield doc


def _containers(node: Any) -> Iterator[dict[str, Any]]:
    """Every container of every pod template inside ``node`` (kustomize's image field specs)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("containers", "initContainers") and isinstance(value, list):
                yield from (c for c in value if isinstance(c, dict))
            else:
                yield from _containers(value)
    elif isinstance(node, list):
        for item in node:
            yield from _containers(item)


def _split_image(image: str) -> tuple[str, str, str]:
    """(name, ":tag" or "", "@digest" or "") of an image reference."""
    name, at, digest = image.partition("@")
    slash = name.rfind("/")
    colon = name.rfind(":")
    tag = ""
    if colon > slash:
        name, tag = name[:colon], name[colon:]
    return name, tag, at + digest


def _retag(image: str, rules: list[dict[str, Any]]) -> str:
    name, tag, digest = _split_image(image)
    for rule in rules:
        if rule.get("name") != name:
            continue
        unknown = set(rule) - {"name", "newName", "newTag", "digest"}
        if unknown:
            raise KustomizeError(f"images entry for {name!r} uses {sorted(unknown)}")
        name = str(rule.get("newName", name))
        if "digest" in rule:
            tag, digest = "", "@" + str(rule["digest"])
        elif "newTag" in rule:
            tag, digest = ":" + str(rule["newTag"]), ""
        break
    return name + tag + digest
