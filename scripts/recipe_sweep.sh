#!/usr/bin/env bash
# The recipe sweep behind today's defaults (docs/results.md §0): each candidate trained 1000
# steps (batch 16, seed 0) on the rough GRF (32², length scale 4, smoothness 0.5, 30% pixels,
# 2000 training fields) or on Kolmogorov 32² snapshots (20% pixels), scored every 250 steps on
# 64 held-out test fields with the single-step K = 10 ensemble (ratio to the Bayes oracle on the
# GRF). Prints the held-out MSE at the last score; runs one after another (about 2-4 minutes
# each on 2 idle cores; ~40 minutes for all).
#   usage: scripts/recipe_sweep.sh [OUT_DIR] [STEPS] [CANDIDATE ...]
#   KOL_FIELDS=DIR takes the Kolmogorov fields from DIR/{train,test}.npz instead of generating them.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
make -C "$root" --no-print-directory build >/dev/null
L="$root/target/release/lacuna"
out="${1:-recipe-sweep}"
steps="${2:-1000}"
shift $(( $# > 2 ? 2 : $# ))
mkdir -p "$out" && cd "$out"

if [ ! -f grf-oracle.npz ]; then
  $L --quiet data gen grf --out grf-train.npz --n 2000 --size 32 --length-scale 4 --smoothness 0.5 --mask pixel:0.3 --seed 1
  $L --quiet data gen grf --out grf-test.npz --n 100 --size 32 --length-scale 4 --smoothness 0.5 --mask pixel:0.3 --seed 2
  $L --quiet data krige --data grf-test.npz --out grf-oracle.npz --length-scale 4 --smoothness 0.5
fi
if [ -n "${KOL_FIELDS:-}" ]; then
  # Another case's fields, e.g. a curves bench's seed directory (train.npz, test.npz).
  ln -sf "$KOL_FIELDS/train.npz" kol-train.npz
  ln -sf "$KOL_FIELDS/test.npz" kol-test.npz
elif [ ! -f kol-test.npz ]; then
  $L --quiet data gen kolmogorov --out kol-train.npz --n 2000 --size 32 --mask pixel:0.2 --seed 1
  $L --quiet data gen kolmogorov --out kol-test.npz --n 100 --size 32 --mask pixel:0.2 --seed 2
fi

# Candidates: NAME DATA and the TOML lines that differ from the published recipe.
# Rows before the kt-* ones were measured when the default learning rate was 1e-3 (today's
# 1.5e-3 came from the kt-* rows); the published recipe pins it.
published='[optim]
lr = 0.001
[denoiser]
skip = "none"
fill_input = false
noise_cond = "time"
fill_sweeps = 0
fill_cg = 0'
declare -A cfg data
add() { data[$1]=$2; cfg[$1]=$3; }
add published         grf "inference_context_ratio = 0
time_low_share = 0
$published"
add skip-pp           grf 'inference_context_ratio = 0
time_low_share = 0
[denoiser]
fill_cg = 0'
add skip-pp-low25     grf 'inference_context_ratio = 0
time_low_share = 0.25
[denoiser]
fill_cg = 0'
add skip-pp-r1        grf 'time_low_share = 0
[denoiser]
fill_cg = 0'
add skip-pp-r1-ctx05  grf 'time_low_share = 0
[partition]
kind = "pixel"
context_ratio = 0.5
[denoiser]
fill_cg = 0'
add skip-pp-r1-lr3    grf 'time_low_share = 0
[optim]
lr = 0.003
[denoiser]
fill_cg = 0'
add skip-pp-r1-uniform grf 'time_low_share = 0
time_power = 1.0
[denoiser]
fill_cg = 0'
add skip-pp-r1-cpf4   grf 'time_low_share = 0
contexts_per_field = 4
[denoiser]
fill_cg = 0'
add skip-pp-r1-c64    grf 'time_low_share = 0
[model]
channels = 64
[denoiser]
fill_cg = 0'
add skip-pp-r1-low50  grf 'time_low_share = 0.5
[denoiser]
fill_cg = 0'
add skip-pp-r1-low100 grf 'time_low_share = 1.0
[denoiser]
fill_cg = 0'
# "defaults" is the recipe of the first curves run (half the batch at t_eps); today's default
# share is 0.8 (defaults-low80).
add defaults          grf 'time_low_share = 0.5'
add defaults-low80    grf 'time_low_share = 0.8'
add published-kol     kol "inference_context_ratio = 0
time_low_share = 0
$published"
add defaults-kol      kol 'time_low_share = 0.5'
# Kolmogorov candidates on top of defaults-kol (run them with STEPS = 4000).
add kol-low80         kol 'time_low_share = 0.8'
add kol-lr2           kol 'time_low_share = 0.5
[optim]
lr = 0.002'
add kol-rb2           kol 'time_low_share = 0.5
[model]
res_blocks = 2'
add kol-periodic      kol 'time_low_share = 0.5
periodic = true'
add kol-periodic-low80 kol 'periodic = true
time_low_share = 0.8'
# Equal-time candidates on today's defaults with `periodic` (session 9): each trains for the
# 370 s that the published recipe's 4000 steps take here (its LR schedule runs over that time),
# so run them with nothing else on the machine and STEPS large enough not to bind (16000).
add kt-ref            kol 'periodic = true
time_budget = 370.0'
add kt-b8             kol 'periodic = true
time_budget = 370.0
batch = 8'
add kt-ema998         kol 'periodic = true
time_budget = 370.0
ema_decay = 0.998'
add kt-b8-ema998      kol 'periodic = true
time_budget = 370.0
batch = 8
ema_decay = 0.998'
# The flow's symmetries declared: any column shift, row shifts by the forcing's period (8 of 32).
add kt-shift          kol 'periodic = true
time_budget = 370.0
shift_symmetry = [8, 1]'
add kt-shift-ema998   kol 'periodic = true
time_budget = 370.0
shift_symmetry = [8, 1]
ema_decay = 0.998'
add kt-shift-lr15     kol 'periodic = true
time_budget = 370.0
shift_symmetry = [8, 1]
[optim]
lr = 0.0015'
add grf-shift         grf 'periodic = true
shift_symmetry = [1, 1]'
add grf-periodic      grf 'periodic = true'
add grf-shift-lr15    grf 'periodic = true
shift_symmetry = [1, 1]
[optim]
lr = 0.0015'

names=("$@")
[ ${#names[@]} -gt 0 ] || names=(published skip-pp skip-pp-low25 skip-pp-r1 skip-pp-r1-ctx05 skip-pp-r1-lr3
  skip-pp-r1-uniform skip-pp-r1-cpf4 skip-pp-r1-c64 skip-pp-r1-low50 skip-pp-r1-low100 defaults defaults-low80
  published-kol defaults-kol)
echo "| candidate | data | steps | held-out MSE | / oracle |"
echo "|---|---|---|---|---|"
for n in "${names[@]}"; do
  d=${data[$n]:?unknown candidate $n}
  oracle=""
  [ "$d" = grf ] && oracle="oracle = \"$PWD/grf-oracle.npz\""
  # Top-level keys first, then the candidate's tables, then scoring.
  printf '%s\n[score]\nevery = 250\ndata = "%s"\n%s\n' "${cfg[$n]}" "$PWD/$d-test.npz" "$oracle" > "$n.toml"
  rm -rf "run-$n"
  $L --quiet train --data "$d-train.npz" --out "run-$n" --config "$n.toml" --steps "$steps" --patience 0 >/dev/null
  grep score_mse "run-$n/metrics.jsonl" | tail -1 | python3 -c "
import json, sys
d = json.loads(sys.stdin.read())
r = d.get('score_ratio')
print(f\"| $n | $d | {d['step']} | {d['score_mse']:.4f} | {'' if r is None else f'{r:.3f}'} |\")"
done

# Reference lines on the same GRF test fields (classical methods and the interpolant alone).
echo
echo "| baseline | data | MSE missing | / oracle |"
echo "|---|---|---|---|"
for b in fill biharmonic harmonic krige; do
  $L --quiet baseline "$b" --data grf-test.npz --train grf-train.npz --out "base-$b.npz" >/dev/null
  $L eval --pred "base-$b.npz" --truth grf-test.npz --oracle grf-oracle.npz |
    awk -v b="$b" '/^MSE, missing entries/ {m=$NF} /MSE \/ oracle MSE/ {r=$NF} END {print "| " b " | grf | " m " | " r " |"}'
done

# Inference checks on the trained runs (those of this sweep that exist): all of M as the
# inference context, and the multi-step sampler's CRPS and spread/skill.
echo
echo "| run | check | MSE missing | CRPS | spread/skill |"
echo "|---|---|---|---|---|"
for n in published skip-pp published-kol defaults kol-periodic kol-periodic-low80; do
  [ -d "run-$n" ] || continue
  d=${data[$n]}
  for check in "--context-ratio 1" "--steps 20 --samples 4"; do
    $L --quiet impute --run "run-$n" --data "$d-test.npz" --out "check-$n.npz" $check >/dev/null
    $L eval --pred "check-$n.npz" --truth "$d-test.npz" |
      awk -v n="$n" -v c="$check" '/^MSE, missing entries/ {m=$NF} /CRPS, missing/ {p=$NF} /spread \/ skill/ {s=$NF}
        END {print "| " n " | " c " | " m " | " p " | " s " |"}'
  done
done
