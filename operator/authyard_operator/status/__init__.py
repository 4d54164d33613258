"""Status: what each kind reports (kubectl, kstatus, Argo CD and Flux read it) and the one way it is written.

``conditions`` holds what both kinds share; ``authserver`` and ``oauthclient`` build each kind's status as a
pure function of what a reconcile found; ``write`` is where a status leaves the operator.
"""
