"""Code generators, run at development time and never by the operator: the CRDs from the spec models
(``crds``, through ``structural_schema``) and the CRD reference from the CRDs (``crd_reference``).

    python -m authyard_operator.codegen.crds [--check]
    python -m authyard_operator.codegen.crd_reference [--check]
"""
