"""A JSON schema for KEDA's ScaledObject (keda.sh/v1alpha1), the one CRD in ``deploy/k8s``.

The Kubernetes schemas of kubernetes-validate cover built-in kinds only. This is written from the
``openAPIV3Schema`` of KEDA's ``scaledobjects.keda.sh`` CRD (KEDA 2.x), restricted to the fields
that exist there, strict about unknown fields (the API server would prune them silently: a typo
such as ``maxReplicas`` would be lost, not reported). The HPA ``behavior`` that KEDA embeds is
the Kubernetes ``autoscaling/v2`` type, so it is checked against the Kubernetes definitions
themselves. Trigger ``metadata`` is a string map in the CRD; the Kafka scaler's parameter names
(KEDA docs, "Apache Kafka" scaler) are checked too, since KEDA reports unknown ones only at run
time.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

import jsonschema
from referencing import Registry, Resource

__all__ = ["KAFKA_SCALER_PARAMETERS", "validate_scaled_object"]

K8S_DEFS = "https://kubernetes.io/api/_definitions.json#/$defs/"

KAFKA_SCALER_PARAMETERS = frozenset(
    {
        "bootstrapServers",
        "consumerGroup",
        "topic",
        "lagThreshold",
        "activationLagThreshold",
        "offsetResetPolicy",
        "allowIdleConsumers",
        "scaleToZeroOnInvalidOffset",
        "excludePersistentLag",
        "limitToPartitionsWithLag",
        "ensureEvenDistributionOfPartitions",
        "partitionLimitation",
        "version",
        "sasl",
        "tls",
        "unsafeSsl",
    }
)

_INT32 = {"type": "integer", "minimum": -(2**31), "maximum": 2**31 - 1}

SCALED_OBJECT: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "keda.sh/v1alpha1"},
        "kind": {"const": "ScaledObject"},
        "metadata": {"$ref": K8S_DEFS + "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"},
        "spec": {
            "type": "object",
            "required": ["scaleTargetRef", "triggers"],
            "additionalProperties": False,
            "properties": {
                "scaleTargetRef": {
                    "type": "object",
                    "required": ["name"],
                    "additionalProperties": False,
                    "properties": {
                        "apiVersion": {"type": "string"},
                        "kind": {"type": "string"},
                        "name": {"type": "string"},
                        "envSourceContainerName": {"type": "string"},
                    },
                },
                "pollingInterval": _INT32,
                "cooldownPeriod": _INT32,
                "initialCooldownPeriod": _INT32,
                "idleReplicaCount": _INT32,
                "minReplicaCount": _INT32,
                "maxReplicaCount": _INT32,
                "fallback": {
                    "type": "object",
                    "required": ["failureThreshold", "replicas"],
                    "properties": {"failureThreshold": _INT32, "replicas": _INT32},
                },
                "advanced": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "restoreToOriginalReplicaCount": {"type": "boolean"},
                        "horizontalPodAutoscalerConfig": {
                            "type": "object",
                            "additionalProperties": False,
                            "properties": {
                                "name": {"type": "string"},
                                "behavior": {
                                    "$ref": K8S_DEFS
                                    + "io.k8s.api.autoscaling.v2.HorizontalPodAutoscalerBehavior"
                                },
                            },
                        },
                        "scalingModifiers": {"type": "object"},
                    },
                },
                "triggers": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "required": ["type", "metadata"],
                        "additionalProperties": False,
                        "properties": {
                            "type": {"type": "string"},
                            "name": {"type": "string"},
                            "metadata": {
                                "type": "object",
                                "additionalProperties": {"type": "string"},
                            },
                            "authenticationRef": {
                                "type": "object",
                                "required": ["name"],
                                "properties": {
                                    "name": {"type": "string"},
                                    "kind": {"type": "string"},
                                },
                            },
                            "metricType": {"enum": ["AverageValue", "Value", "Utilization"]},
                            "useCachedMetrics": {"type": "boolean"},
                        },
                    },
                },
            },
        },
    },
}


def _kubernetes_definitions(version: str) -> Resource[Any]:
    path = (
        resources.files("kubernetes_validate")
        / "kubernetes-json-schema"
        / f"v{version}-local-strict"
        / "_definitions.json"
    )
    return Resource.from_contents(json.loads(path.read_text()))


def validate_scaled_object(obj: dict[str, Any], kubernetes_version: str) -> None:
    """Raise ``jsonschema.ValidationError`` unless ``obj`` is a well-formed ScaledObject."""
    definitions = _kubernetes_definitions(kubernetes_version)
    registry: Registry[Any] = definitions @ Registry()
    jsonschema.Draft202012Validator(SCALED_OBJECT, registry=registry).validate(obj)
    for trigger in obj["spec"]["triggers"]:
        if trigger["type"] == "kafka":
            unknown = set(trigger["metadata"]) - KAFKA_SCALER_PARAMETERS
            if unknown:
                raise jsonschema.ValidationError(
                    f"unknown kafka scaler parameter(s): {sorted(unknown)}"
                )
