"""Deployment files rendered from the service registry: compose, Kubernetes, probes."""
