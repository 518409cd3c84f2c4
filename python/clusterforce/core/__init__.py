"""The model contract every kind shares: the model file, the estimator base, the kinds registry,
the ASE calculator and the pair wall (repulsive baseline).

Nothing here imports a kind: the registry finds a kind's module by name (:data:`registry.KINDS`).
"""
