"""The real programs the test suite and the benchmarks run on loopback, started and stopped one way.

* ``postgres``   -- a throwaway PostgreSQL cluster from the server binaries on this machine;
* ``processes``  -- a program serving HTTP in a process group of its own: readiness polled with a
                    deadline, SIGTERM then SIGKILL of the group;
* ``authserver`` -- ``authserver serve`` and the ``authserver`` CLI against the same configuration;
* ``kube_emulator`` and ``kube`` -- the emulated Kubernetes API (the one part that is not real) with the
                    repository's CRDs, and a kubeconfig pointing at it;
* ``operator``   -- ``authyard-operator`` as a child process, and an AuthServer it reconciles served by a
                    real ``authserver serve`` (``operator.served_authserver``);
* ``polling``    -- waiting for observed state with a bounded deadline (never a fixed sleep);
* ``accounts``   -- users put straight into a store; ``ports`` -- a free loopback port.

Why a top-level package of its own: ``tests/`` and ``bench/`` both start these programs. A benchmark must
not depend on the test suite, and the tests import ``bench`` to check it, so what both use cannot live in
either. Nothing under ``authserver/`` or ``operator/`` imports it (tests/packaging/
test_import_boundaries.py checks): it is not in the wheel, the container images do not carry it, and it
may use the development dependencies (kmock).
"""
