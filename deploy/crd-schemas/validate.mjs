// Validate Kubernetes custom resources against the upstream CRD schemas that the @kubernetes-models packages
// compile (Prometheus Operator, KEDA). Reads a JSON array of objects on stdin; prints a JSON array with one entry
// per object: null when valid, else the problem. Used by deploy/validate.py (make helm-lint and the chart tests).
import { ServiceMonitor } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor";
import { PrometheusRule } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PrometheusRule";
import { ScaledObject } from "@kubernetes-models/keda/keda.sh/v1alpha1/ScaledObject";

const MODELS = {
  "monitoring.coreos.com/v1/ServiceMonitor": ServiceMonitor,
  "monitoring.coreos.com/v1/PrometheusRule": PrometheusRule,
  "keda.sh/v1alpha1/ScaledObject": ScaledObject,
};

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const objects = JSON.parse(Buffer.concat(chunks).toString("utf8"));
const results = objects.map((obj) => {
  const Model = MODELS[`${obj.apiVersion}/${obj.kind}`];
  if (!Model) return `no upstream schema for ${obj.apiVersion} ${obj.kind}`;
  try {
    new Model(obj).validate();
    return null;
  } catch (error) {
    return error.message;
  }
});
process.stdout.write(JSON.stringify(results));
