"""Fixtures of the packaging tests: the container images, built with podman once per session."""

from tests.support.podman import container_images, podman  # noqa: F401 - fixtures for this directory
