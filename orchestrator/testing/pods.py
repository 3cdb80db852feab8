"""What a container of a rendered pod template runs: its argv and environment, as Kubernetes
resolves them, so a test can start that very process locally.

The rules implemented (Kubernetes docs, "Define a Command and Arguments for a Container" and
"Define Environment Variables"; kubelet's ``expansion`` package):

* argv: ``command`` replaces the image's ENTRYPOINT and drops its CMD; ``args`` alone replace
  the CMD; neither means ENTRYPOINT + CMD.
* environment: the image's ENV, then every ``envFrom`` source in order (ConfigMap or Secret,
  optional ``prefix``; a later source wins), then ``env`` in order (``value`` or ``valueFrom``
  a ConfigMap/Secret key or the pod's ``metadata.name``/``metadata.namespace``), then HOSTNAME =
  the pod's name, as the kubelet sets it. ``$(VAR)`` in an ``env`` value expands to a variable
  defined before it, in ``command``/``args`` to any variable of the container; ``$$`` is a
  literal ``$``; an undefined reference stays as written.

Anything else (other field paths, resource fields, a missing non-optional reference) is refused
with a message: a test must never run something the cluster would not.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from orchestrator.testing.dockerfile import ImageConfig

__all__ = ["ContainerProcess", "PodError", "expand", "find", "pod_spec", "resolve_container"]


class PodError(Exception):
    """A container spec this resolver does not implement, or a reference the cluster would fail."""


@dataclass(frozen=True)
class ContainerProcess:
    argv: list[str]
    env: dict[str, str]


def find(objects: Sequence[Mapping[str, Any]], kind: str, name: str) -> dict[str, Any]:
    for obj in objects:
        if obj.get("kind") == kind and obj.get("metadata", {}).get("name") == name:
            return dict(obj)
    raise PodError(f"no {kind} named {name!r} in the rendered manifests")


def pod_spec(workload: Mapping[str, Any]) -> dict[str, Any]:
    """The pod template's spec of a StatefulSet, Deployment or Job."""
    spec: dict[str, Any] = workload["spec"]["template"]["spec"]
    return spec


def resolve_container(
    container: Mapping[str, Any],
    image: ImageConfig,
    objects: Sequence[Mapping[str, Any]],
    *,
    pod_name: str,
    namespace: str,
) -> ContainerProcess:
    env: dict[str, str] = dict(image.env)
    for source in container.get("envFrom", []):
        prefix = source.get("prefix", "")
        for key, value in _source_data(source, objects).items():
            env[prefix + key] = value
    pod_fields = {"metadata.name": pod_name, "metadata.namespace": namespace}
    for var in container.get("env", []):
        name = var["name"]
        if "value" in var:
            env[name] = expand(str(var["value"]), env)
        elif "valueFrom" in var:
            resolved = _value_from(name, var["valueFrom"], objects, pod_fields)
            if resolved is not None:
                env[name] = resolved
        else:
            env[name] = ""
    env["HOSTNAME"] = pod_name
    command = [expand(a, env) for a in container.get("command", [])]
    args = [expand(a, env) for a in container.get("args", [])]
    if command:
        argv = command + args
    elif args:
        argv = image.entrypoint + args
    else:
        argv = image.entrypoint + image.cmd
    if not argv:
        raise PodError(f"container {container.get('name')!r} runs nothing")
    return ContainerProcess(argv, env)


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes' ``$(VAR)`` expansion (kubelet ``third_party/forked/golang/expansion``)."""
    out: list[str] = []
    i = 0
    while i < len(text):
        if text[i] == "$" and i + 1 < len(text):
            nxt = text[i + 1]
            if nxt == "$":
                out.append("$")
                i += 2
                continue
            if nxt == "(":
                end = text.find(")", i + 2)
                if end != -1:
                    name = text[i + 2 : end]
                    out.append(env[name] if name in env else text[i : end + 1])
                    i = end + 1
                    continue
        out.append(text[i])
        i += 1
    return "".join(out)


def _source_data(source: Mapping[str, Any], objects: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    for field, kind in (("configMapRef", "ConfigMap"), ("secretRef", "Secret")):
        if field in source:
            ref = source[field]
            try:
                return _data(find(objects, kind, ref["name"]))
            except PodError:
                if ref.get("optional", False):
                    return {}
                raise
    raise PodError(f"envFrom source {dict(source)} is neither configMapRef nor secretRef")


def _value_from(
    name: str,
    value_from: Mapping[str, Any],
    objects: Sequence[Mapping[str, Any]],
    pod_fields: Mapping[str, str],
) -> str | None:
    if "fieldRef" in value_from:
        path = value_from["fieldRef"]["fieldPath"]
        if path not in pod_fields:
            raise PodError(f"{name}: fieldRef {path} is not implemented here")
        return pod_fields[path]
    for field, kind in (("configMapKeyRef", "ConfigMap"), ("secretKeyRef", "Secret")):
        if field in value_from:
            ref = value_from[field]
            optional = ref.get("optional", False)
            try:
                data = _data(find(objects, kind, ref["name"]))
            except PodError:
                if optional:
                    return None
                raise
            if ref["key"] not in data:
                if optional:
                    return None
                raise PodError(f"{name}: {kind} {ref['name']} has no key {ref['key']!r}")
            return data[ref["key"]]
    raise PodError(f"{name}: valueFrom {dict(value_from)} is not implemented here")


def _data(obj: Mapping[str, Any]) -> dict[str, str]:
    """A ConfigMap's data, or a Secret's data (base64) overlaid by its stringData."""
    if obj["kind"] == "Secret":
        data = {k: base64.b64decode(v).decode() for k, v in (obj.get("data") or {}).items()}
        data.update({k: str(v) for k, v in (obj.get("stringData") or {}).items()})
        return data
    return {k: str(v) for k, v in (obj.get("data") or {}).items()}
