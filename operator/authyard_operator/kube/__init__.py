"""Talking to the Kubernetes API: which resources the operator touches (registry), where the API is and how
to authenticate (config, credentials), and the calls themselves (client)."""
