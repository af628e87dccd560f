"""Kubernetes objects the operator owns: pure manifests (children.py) and applying them (client.py)."""
