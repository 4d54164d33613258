"""kopf handlers: thin translations between kopf and the reconcile functions."""
