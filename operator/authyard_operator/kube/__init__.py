"""Talking to the Kubernetes API: which resources the operator touches (registry), and how (client)."""
