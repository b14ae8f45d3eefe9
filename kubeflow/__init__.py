"""Kubeflow Pipelines v2 / Vertex runner, container image, compile and submit."""
