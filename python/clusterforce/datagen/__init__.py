"""Reference data by heating MD: starting structures, reference methods, sampling, resume.

Typical use (what ``clusterforce datagen`` does)::

    from clusterforce.datagen import HeatingSchedule, Job, build, generate, make_reference
    jobs = [Job(s, make_reference("gfn1-xtb", s.atoms)) for s in build("ring", [4, 5, 6])]
    generate(jobs, HeatingSchedule(frames=150), "rings.extxyz")
"""

from .builders import SHAPES, SYSTEMS, Structure, build, from_file, gold_thiolate_ring
from .heating import BUILD_STREAM, HeatingSchedule, Job, StructureSummary, generate, rng_stream
from .references import METHODS, Reference, Rung, default_electronic_temperature, make_reference
from .sampling import record_steps
from .scf import LadderCalculator, ScfCounts, ScfFailure, single_point_energies

__all__ = [
    "BUILD_STREAM",
    "METHODS",
    "SHAPES",
    "SYSTEMS",
    "HeatingSchedule",
    "Job",
    "LadderCalculator",
    "Reference",
    "Rung",
    "ScfCounts",
    "ScfFailure",
    "Structure",
    "StructureSummary",
    "build",
    "default_electronic_temperature",
    "from_file",
    "generate",
    "gold_thiolate_ring",
    "make_reference",
    "record_steps",
    "rng_stream",
    "single_point_energies",
]
