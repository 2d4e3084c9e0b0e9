"""Generate the chart's ``values.schema.json``.

The schema is written by ``python -m deploy.render`` (``make manifests``) and checked for drift by
``python -m deploy.validate`` (``make helm-lint``). Every object in it rejects unknown keys
(``additionalProperties: false``); maps whose keys are free (``env``, ``nodeSelector``, annotations, labels) constrain
their keys with ``patternProperties`` instead. Fields that are passed through to Kubernetes (affinity, tolerations,
security contexts, resources, EnvVar objects, NetworkPolicy peers) reuse the strict Kubernetes 1.30 definitions
bundled with ``kubernetes-validate``, copied into ``$defs`` so that the file is self-contained. Descriptions come from
the ``## @param`` lines of ``values.yaml``.
"""

from __future__ import annotations

import json
import re
from importlib import resources
from typing import Any

from deploy import COMPONENTS, KUBE_VERSION, VALUES_FILE

Schema = dict[str, Any]

ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"
LABEL_KEY = r"^([A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
LABEL_VALUE = r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$"
QUANTITY = r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$"
DURATION = r"^[0-9]+(ms|s|m|h)$"
K8S = "io.k8s.api.core.v1."
_PARAM = re.compile(r"^\s*## @param (\S+) (.+)$")


def ref(definition: str) -> Schema:
    """A reference to a Kubernetes definition copied into ``$defs``."""
    return {"$ref": f"#/$defs/{definition}"}


def obj(properties: dict[str, Schema], required: tuple[str, ...] = ()) -> Schema:
    """A closed object: only the listed properties are allowed."""
    schema: Schema = {"type": "object", "additionalProperties": False, "properties": properties}
    if required:
        schema["required"] = list(required)
    return schema


def string(pattern: str | None = None, enum: list[str] | None = None, min_length: int | None = None) -> Schema:
    """A string, optionally constrained."""
    schema: Schema = {"type": "string"}
    if pattern:
        schema["pattern"] = pattern
    if enum:
        schema["enum"] = enum
    if min_length is not None:
        schema["minLength"] = min_length
    return schema


def integer(minimum: int | None = None, maximum: int | None = None) -> Schema:
    """An integer, optionally bounded."""
    schema: Schema = {"type": "integer"}
    if minimum is not None:
        schema["minimum"] = minimum
    if maximum is not None:
        schema["maximum"] = maximum
    return schema


BOOLEAN: Schema = {"type": "boolean"}


def array(items: Schema) -> Schema:
    """A list of items."""
    return {"type": "array", "items": items}


def keyed_map(key_pattern: str, value: Schema) -> Schema:
    """A map with free keys matching ``key_pattern``; anything else is rejected."""
    return {"type": "object", "patternProperties": {key_pattern: value}, "additionalProperties": False}


def labels() -> Schema:
    """Kubernetes labels."""
    return keyed_map(LABEL_KEY, string(pattern=LABEL_VALUE))


def annotation_map() -> Schema:
    """Kubernetes annotations."""
    return keyed_map(LABEL_KEY, string())


def image(tag_required: bool = False) -> Schema:
    """``{repository, tag, pullPolicy}``."""
    return obj(
        {
            "repository": string(min_length=1),
            "tag": string(min_length=1) if tag_required else string(),
            "pullPolicy": string(enum=["Always", "IfNotPresent", "Never"]),
        },
        required=("repository", "tag", "pullPolicy"),
    )


def pdb() -> Schema:
    """``{enabled, minAvailable}``; minAvailable is a count or a percentage."""
    return obj(
        {
            "enabled": BOOLEAN,
            "minAvailable": {"oneOf": [integer(minimum=0), string(pattern=r"^[0-9]{1,3}%$")]},
        },
        required=("enabled", "minAvailable"),
    )


def service_block(key: str) -> Schema:
    """The values block of one Facemint service."""
    properties: dict[str, Schema] = {
        "enabled": BOOLEAN,
        "replicaCount": integer(minimum=0),
        "image": image(),
        "resources": ref(K8S + "ResourceRequirements"),
        "autoscaling": obj(
            {
                "enabled": BOOLEAN,
                "minReplicas": integer(minimum=1),
                "maxReplicas": integer(minimum=1),
                "targetCPUUtilizationPercentage": integer(minimum=1, maximum=100),
            },
            required=("enabled", "minReplicas", "maxReplicas", "targetCPUUtilizationPercentage"),
        ),
        "pdb": pdb(),
        "env": keyed_map(ENV_NAME, {"type": ["string", "number", "boolean"]}),
        "extraEnv": array(ref(K8S + "EnvVar")),
        "podAnnotations": annotation_map(),
        "nodeSelector": keyed_map(LABEL_KEY, string(pattern=LABEL_VALUE)),
        "tolerations": array(ref(K8S + "Toleration")),
        "affinity": ref(K8S + "Affinity"),
        "topologySpreadConstraints": array(ref(K8S + "TopologySpreadConstraint")),
        "podLabels": labels(),
        "priorityClassName": string(),
        "runtimeClassName": string(),
        "extraVolumes": array(ref(K8S + "Volume")),
        "extraVolumeMounts": array(ref(K8S + "VolumeMount")),
        "extraContainers": array(ref(K8S + "Container")),
        "tmpSizeLimit": string(pattern=QUANTITY),
    }
    if key == "gateway":
        properties["service"] = obj(
            {
                "type": string(enum=["ClusterIP", "NodePort", "LoadBalancer"]),
                "annotations": annotation_map(),
            }
        )
        properties["ingress"] = obj(
            {
                "enabled": BOOLEAN,
                "className": string(),
                "annotations": annotation_map(),
                "hosts": array(
                    obj(
                        {
                            "host": string(min_length=1),
                            "paths": array(
                                obj(
                                    {
                                        "path": string(pattern="^/"),
                                        "pathType": string(enum=["Prefix", "Exact", "ImplementationSpecific"]),
                                    },
                                    required=("path", "pathType"),
                                )
                            ),
                        },
                        required=("host", "paths"),
                    )
                ),
                "tls": array(ref("io.k8s.api.networking.v1.IngressTLS")),
            }
        )
    if key == "inference":
        properties["runner"] = string(enum=["auto", "onnxruntime", "triton"])
        properties["pack"] = string(enum=["open", "insightface"])
    return obj(properties, required=("enabled", "replicaCount", "image", "resources", "autoscaling", "pdb"))


def values_schema() -> Schema:
    """The schema of every key ``values.yaml`` may hold, without descriptions and Kubernetes definitions."""
    properties: dict[str, Schema] = {
        "nameOverride": string(),
        "fullnameOverride": string(),
        "commonLabels": labels(),
        "imagePullSecrets": array(ref(K8S + "LocalObjectReference")),
        "imageRegistry": string(),
        "serviceAccount": obj(
            {"create": BOOLEAN, "annotations": annotation_map(), "automountServiceAccountToken": BOOLEAN}
        ),
        "podSecurityContext": ref(K8S + "PodSecurityContext"),
        "containerSecurityContext": ref(K8S + "SecurityContext"),
        "terminationGracePeriodSeconds": integer(minimum=0),
        "preStopSleepSeconds": integer(minimum=0),
        "clusterDomain": string(min_length=1),
        "config": obj(
            {
                "logLevel": string(enum=["DEBUG", "INFO", "WARNING", "ERROR"]),
                "otlpEndpoint": string(),
                "otlpInsecure": {"type": "boolean"},
                "traceSampleRatio": {"type": "number", "minimum": 0, "maximum": 1},
                "shutdownGraceSeconds": {"type": "number", "minimum": 0},
            }
        ),
        "postgresql": obj(
            {
                "existingSecret": string(),
                "existingSecretKey": string(min_length=1),
                "dsn": string(),
                "poolSize": integer(minimum=1),
                "maxConnections": integer(minimum=1),
                "reservedConnections": integer(minimum=0),
            }
        ),
        "nats": obj(
            {
                "url": string(pattern=r"^(nats|tls)://"),
                "existingSecret": string(),
                "existingSecretKey": string(min_length=1),
                "tls": obj({"existingSecret": string(), "clientCertificate": BOOLEAN}),
                "streamReplicas": integer(minimum=1, maximum=5),
            },
            required=("url",),
        ),
        "qdrant": obj(
            {
                "url": string(pattern=r"^https?://"),
                "existingSecret": string(),
                "existingSecretKey": string(min_length=1),
                "shardNumber": integer(minimum=1),
                "replicationFactor": integer(minimum=1),
                "writeConsistencyFactor": integer(minimum=1),
            },
            required=("url",),
        ),
        "objectStore": obj(
            {
                "endpoint": string(pattern=r"^(https?://[^/]+/?)?$"),
                "region": string(),
                "bucket": string(pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$"),
                "existingSecret": string(),
                "accessKeyKey": string(min_length=1),
                "secretKeyKey": string(min_length=1),
            }
        ),
        "models": obj(
            {
                "source": string(enum=["image", "pvc"]),
                "image": obj(
                    {
                        "repository": string(min_length=1),
                        "tag": string(),
                        "pullPolicy": string(enum=["Always", "IfNotPresent", "Never"]),
                        "path": string(pattern="^/"),
                    }
                ),
                "sizeLimit": string(pattern=QUANTITY),
                "pvc": obj({"existingClaim": string(), "subPath": string()}),
                "mountPath": string(pattern="^/"),
            }
        ),
        "triton": obj(
            {
                "enabled": BOOLEAN,
                "externalUrl": string(),
                "replicaCount": integer(minimum=0),
                "maxSurge": integer(minimum=0),
                "maxUnavailable": integer(minimum=0),
                "image": image(tag_required=True),
                "extraArgs": array(string(pattern="^--")),
                "resources": ref(K8S + "ResourceRequirements"),
                "shmSizeLimit": string(pattern=QUANTITY),
                "nodeSelector": keyed_map(LABEL_KEY, string(pattern=LABEL_VALUE)),
                "tolerations": array(ref(K8S + "Toleration")),
                "affinity": ref(K8S + "Affinity"),
                "podAnnotations": annotation_map(),
                "podSecurityContext": ref(K8S + "PodSecurityContext"),
                "pdb": pdb(),
            }
        ),
        "keda": obj(
            {
                "enabled": BOOLEAN,
                "natsMonitoringEndpoint": string(),
                "account": string(min_length=1),
                "useHttps": BOOLEAN,
                "lagThreshold": obj(
                    {key: integer(minimum=1) for key in ("taskOrchestrator", "mediaDecoder", "inference")}
                ),
                "pollingInterval": integer(minimum=1),
                "cooldownPeriod": integer(minimum=0),
            }
        ),
        "migrations": obj(
            {
                "enabled": BOOLEAN,
                "image": image(),
                "command": {**array(string(min_length=1)), "minItems": 1},
                "backoffLimit": integer(minimum=0),
                "activeDeadlineSeconds": integer(minimum=1),
                "resources": ref(K8S + "ResourceRequirements"),
            }
        ),
        "metrics": obj(
            {
                "serviceMonitor": obj(
                    {
                        "enabled": BOOLEAN,
                        "interval": string(pattern=DURATION),
                        "scrapeTimeout": string(pattern=DURATION),
                        "labels": labels(),
                    }
                ),
                "prometheusRule": obj({"enabled": BOOLEAN, "labels": labels(), "runbookBaseUrl": string()}),
            }
        ),
        "dashboards": obj(
            {
                "enabled": BOOLEAN,
                "label": string(pattern=LABEL_KEY),
                "labelValue": string(pattern=LABEL_VALUE),
                "folder": string(),
            }
        ),
        "networkPolicy": obj(
            {
                "enabled": BOOLEAN,
                "gatewayFrom": array(ref("io.k8s.api.networking.v1.NetworkPolicyPeer")),
                "metricsFrom": array(ref("io.k8s.api.networking.v1.NetworkPolicyPeer")),
            }
        ),
        "tests": obj({"enabled": BOOLEAN}),
    }
    for component in COMPONENTS:
        properties[component.key] = service_block(component.key)
    return obj(properties)


def param_descriptions(values_text: str) -> dict[str, str]:
    """The ``## @param <path> <description>`` lines of values.yaml, by dotted path."""
    found: dict[str, str] = {}
    for line in values_text.splitlines():
        match = _PARAM.match(line)
        if match:
            found[match.group(1)] = match.group(2).strip()
    return found


def _describe(schema: Schema, path: str, descriptions: dict[str, str]) -> None:
    if path in descriptions:
        schema["description"] = descriptions[path]
    for name, child in schema.get("properties", {}).items():
        _describe(child, f"{path}.{name}" if path else name, descriptions)


def _k8s_definitions() -> dict[str, Schema]:
    folder = resources.files("kubernetes_validate") / "kubernetes-json-schema" / f"v{KUBE_VERSION}-local-strict"
    loaded: dict[str, Schema] = json.loads((folder / "_definitions.json").read_text())["$defs"]
    return loaded


def _refs(node: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(node, dict):
        target = node.get("$ref")
        if isinstance(target, str):
            found.add(target.rsplit("/", 1)[-1])
        for value in node.values():
            found |= _refs(value)
    elif isinstance(node, list):
        for value in node:
            found |= _refs(value)
    return found


def _strip(node: Any) -> Any:
    """Drop descriptions and Kubernetes extension keywords from a copied definition."""
    if isinstance(node, dict):
        return {
            key: _strip(value)
            for key, value in node.items()
            if key != "description" and not key.startswith("x-kubernetes-")
        }
    if isinstance(node, list):
        return [_strip(value) for value in node]
    return node


def build_schema(values_text: str | None = None) -> Schema:
    """The complete values.schema.json document."""
    text = VALUES_FILE.read_text() if values_text is None else values_text
    schema = values_schema()
    _describe(schema, "", param_descriptions(text))
    available = _k8s_definitions()
    wanted = _refs(schema)
    copied: dict[str, Schema] = {}
    while wanted:
        name = wanted.pop()
        if name in copied:
            continue
        copied[name] = _strip(available[name])
        types = copied[name].get("type")
        is_object = types == "object" or (isinstance(types, list) and "object" in types)
        if is_object and not {"properties", "additionalProperties"} & copied[name].keys():
            # Free-form by definition in Kubernetes (FieldsV1, reached through a Volume's ephemeral claim template):
            # said so explicitly, so that every object of the document states whether it is closed.
            copied[name]["additionalProperties"] = True
        wanted |= _refs(copied[name]) - copied.keys()
    document: Schema = {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": "Values of the Facemint Helm chart",
        "description": "Generated by `python -m deploy.render` from deploy/schema.py; do not edit by hand.",
        **schema,
        "$defs": dict(sorted(copied.items())),
    }
    return document


def render_schema() -> str:
    """The schema as the text stored in the chart."""
    return json.dumps(build_schema(), indent=2) + "\n"
