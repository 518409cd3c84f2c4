#!/usr/bin/env bash
# The main job, end to end on the data shipped with the package:
#   1. reference data: GFN1-xTB heating MD of an unseen ring size, [Au(SCH3)]7 (resumable);
#   2. train a dml force model (EMLM norms + OAMLM directions) on the shipped `rings` data;
#   3. evaluate it on the new ring7 frames (per-class table, JSON, density plots);
#   4. optimise a fresh ring7 with the model checked by GFN1-xTB (hybrid optimisation: model steps, a
#      reference single point every few steps, uphill segments rejected) and report the GFN1-xTB energy drop.
# Usage: bash examples/main_job.sh [OUTPUT_DIR]      (needs: pip install ".[xtb]")
set -euo pipefail
out=${1:-clusterforce-main-job}
mkdir -p "$out"
cd "$out"

clusterforce datagen --system ring --n 7 --reference gfn1-xtb --temperatures 300 600 \
    --steps-per-temperature 60 --frames 30 --seed 1 -o ring7.extxyz --resume
python -c "from clusterforce import datasets; fr = datasets.load('rings'); print(f'shipped rings data: {len(fr)} frames')"

clusterforce train --kind dml dataset:rings -o rings.cfm
clusterforce evaluate rings.cfm ring7.extxyz --plots plots --json ring7_metrics.json

python -c "from clusterforce.datagen import gold_thiolate_ring; a = gold_thiolate_ring(7); a.center(vacuum=8.0); a.write('ring7_start.xyz')"
clusterforce optimize rings.cfm ring7_start.xyz --reference gfn1-xtb --maxstep 0.1 --fmax 0.05 --steps 150 \
    -o ring7_opt.traj --final ring7_opt.extxyz --reference-frames ring7_opt_reference.extxyz --json ring7_opt.json --quiet
python - <<'PY'
import json

s = json.load(open("ring7_opt.json"))
drop = s["final_energy"] - s["start_energy"]
print(f"GFN1-xTB energy of ring7: start {s['start_energy']:.3f} eV, after hybrid optimisation {s['final_energy']:.3f} eV "
      f"({drop:+.3f} eV) with {s['nsteps']} model steps and {s['reference_calls']} GFN1-xTB calls")
if drop > 0:
    raise SystemExit("the optimisation ended above its start: this is a bug, please report it")
PY
echo "outputs in $(pwd): ring7.extxyz rings.cfm ring7_metrics.json plots/ ring7_opt.traj ring7_opt.json"
