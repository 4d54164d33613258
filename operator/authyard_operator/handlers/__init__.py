"""kopf handlers: decorators that call the reconcile functions and hand the outcome to ``status.write`` and
kopf (events, retry). No decisions here."""
