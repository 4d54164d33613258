"""One reconcile per kind: read what is, render what should be, apply it, and say so in status and events.

Handlers call these and translate the outcome to kopf (status patch, events, retry); nothing here knows kopf.
"""
