"""One reconcile per kind: read what is, render what should be, apply it, and say so in status and events.

Handlers call these and hand the outcome on: its status to ``status.write``, its events and retry to kopf.
Nothing here knows kopf; every status is built by the kind's module in ``status``.
"""
