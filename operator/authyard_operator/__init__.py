"""Authyard operator: turns AuthServer and OAuthClient custom resources into running auth servers."""

from authyard_operator import lazy_imports

# Before anything imports kopf or kubernetes_asyncio: kopf imports kubernetes_asyncio.client at import time.
lazy_imports.install()
