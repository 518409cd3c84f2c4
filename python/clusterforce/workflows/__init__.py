"""What a user runs with a model: force-only optimisation and its hybrid with a reference,
basin hopping and isomer screening, replica and parallel-tempering MD, heat capacities, data
generation and active learning. Workflows use a model only through the ASE calculator and the
estimator contract; none names a kind.
"""
