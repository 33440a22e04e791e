"""The embedded default: a Kubernetes API for one machine, the IAM emulator and the operator.

It is what `make demo`, `make sandbox`, the integration tests and the benchmarks run against.
Its Kubernetes API is kmock's KubernetesEmulator, extended to behave like a real API server
where users and the operator can tell the difference: metadata stamping, status subresource,
schema and CEL validation, `kubectl get` tables, OpenAPI for kubectl, field selectors.
"""
