#!/usr/bin/env bash
# Regenerate the shipped `au38` and `au25` data sets (GFN1-xTB heating MD; see their data cards
# in python/clusterforce/datasets/). Needs ../shared/structures (the starting structures) and
# tblite. ~50 min of CPU per Au38 isomer and ~20 min for Au25 on one core; each run resumes
# with --resume after an interruption. Usage: bash benchmarks/au_thiolate/make_data.sh [WORKDIR]
set -euo pipefail
structures=${STRUCTURES:-$(dirname "$0")/../../../shared/structures}
if [ ! -d "$structures" ]; then
    echo "starting structures not found at $structures (set STRUCTURES=/path/to/shared/structures)" >&2
    exit 1
fi
out=${1:-au_thiolate_data}
mkdir -p "$out"
cd "$out"

for iso in Q T; do
    OMP_NUM_THREADS=1 clusterforce datagen --start "$structures/au38_sch3_24_$iso.xyz" \
        --temperatures 300 500 700 900 --steps-per-temperature 50 --frames 100 --seed 0 \
        --quiet -o "au38_$iso.extxyz" --resume &
done
OMP_NUM_THREADS=1 clusterforce datagen --start "$structures/au25_sch3_18_anion.xyz" --charge -1 \
    --temperatures 300 500 --steps-per-temperature 50 --frames 5 --seed 0 --quiet -o au25.extxyz --resume
wait

# Tag the isomers (datagen names a structure by its formula, the same for Q and T; a bare
# "T" would be read back by ASE as the boolean True) and pack;
# only the comment lines change, the numbers stay byte for byte.
sed 's/ system=Au38C24H72S24 / system=Au38_Q /' au38_Q.extxyz > au38.extxyz
sed 's/ system=Au38C24H72S24 / system=Au38_T /' au38_T.extxyz >> au38.extxyz
gzip -9 -n -f au38.extxyz
gzip -9 -n -c au25.extxyz > au25.extxyz.gz
echo "wrote $(pwd)/au38.extxyz.gz and au25.extxyz.gz"
