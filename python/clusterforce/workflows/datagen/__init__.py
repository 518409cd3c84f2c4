"""Reference data by heating MD: starting structures, sampling, resume (the methods are :mod:`clusterforce.references`).

Typical use (what ``clusterforce datagen`` does)::

    from clusterforce.references import make_reference
    from clusterforce.workflows.datagen import HeatingSchedule, Job, build, generate
    jobs = [Job(s, make_reference("gfn1-xtb", s.atoms)) for s in build("ring", [4, 5, 6])]
    generate(jobs, HeatingSchedule(frames=150), "rings.extxyz")
"""

from clusterforce.workflows.datagen.builders import SHAPES, SYSTEMS, Structure, build, from_file, gold_thiolate_ring
from clusterforce.workflows.datagen.heating import BUILD_STREAM, HeatingSchedule, Job, StructureSummary, generate, rng_stream
from clusterforce.workflows.datagen.sampling import record_steps

__all__ = [
    "BUILD_STREAM",
    "SHAPES",
    "SYSTEMS",
    "HeatingSchedule",
    "Job",
    "Structure",
    "StructureSummary",
    "build",
    "from_file",
    "generate",
    "gold_thiolate_ring",
    "record_steps",
    "rng_stream",
]
