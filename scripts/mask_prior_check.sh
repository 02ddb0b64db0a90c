#!/usr/bin/env bash
# Work II acceptance: the mask priors that `lacuna bench --suite suites/work2.toml` fitted on the
# training masks (cloud-type and swath occlusions) draw masks whose observed-fraction
# distribution and two-point correlation match the held-out test masks within the stated
# tolerance (|Δ mean|, |Δ sd| of the observed fraction ≤ 0.05; |Δ correlation| ≤ 0.1 at every
# lag), checked by `lacuna masks compare --check` (exit status 1 otherwise).
#
#   lacuna bench --suite suites/work2.toml --out bench-work2     # fits the priors (and more)
#   bash scripts/mask_prior_check.sh [bench-work2]                # about 3 minutes on 2 cores
#
# Any other bench with Work II rows: name its directory and cases (their slugs), e.g.
#   bash scripts/mask_prior_check.sh bench-ostia ostia-sst-16-32-tiles-under-infrared-clouds
# DRAWS_ONLY=1 skips the partitions' query probabilities (guided draws: minutes with a long
# sampler) and checks the draws alone.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
BIN="${LACUNA_BIN:-$root/target/release/lacuna}"
BENCH="${1:-bench-work2}"
shift || true
cases=("$@")
[ ${#cases[@]} -gt 0 ] || cases=(grf-32-cloud-50 grf-32-swath-50)
status=0
for case in "${cases[@]}"; do
    dir="$BENCH/$case/seed-0"
    [ -f "$dir/mask-prior/prior.safetensors" ] || { echo "$dir: no fitted prior; run the bench first" >&2; exit 2; }
    echo "## $case: prior fitted on train.npz masks, compared with test.npz masks"
    "$BIN" --quiet masks compare --prior "$dir/mask-prior" --data "$dir/test.npz" --n 256 --check ${DRAWS_ONLY:+--draws-only} || status=1
done
exit $status
