"""The model kinds, one subpackage each (dml, gap, sann, dart), and what they share in training:
energy offsets per element (:mod:`.composition`), the dense-network estimator base
(:mod:`.network`) and the Adam optimiser. Each kind's ``kind`` module is its record in
:mod:`clusterforce.core.registry`.
"""
