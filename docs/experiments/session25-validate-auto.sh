#!/bin/bash
# Does `impute --context-ratio auto` pick the contexts that score better against the truth?
# For each run directory given (bench runs, e.g. docs/bench/ostia/<case>/seed-0/run-prior,
# made by `lacuna bench`; not in git), with the last weights as the bench imputes: auto (its
# choice), then both explicit choices, each scored against the truth of the run's test.npz.
# B: the lacuna binary (default `lacuna`); OUT: where the completions go.
set -euo pipefail
B=${B:-lacuna}
O=${OUT:-validate-auto-out}; mkdir -p $O
for R in "$@"; do
  T=$(dirname $R)/test.npz
  tag=$(echo "$R" | tr '/' '_')
  echo "== $R"
  $B impute --run $R --data $T --out $O/$tag-auto.npz --last --context-ratio auto 2>&1 | grep "contexts chosen"
  for r in 0 1; do
    $B impute --run $R --data $T --out $O/$tag-r$r.npz --last --context-ratio $r --quiet > /dev/null
    $B eval --truth $T --pred $O/$tag-r$r.npz --quiet > /dev/null
    echo "ratio $r: truth MSE missing $(python3 -c "import json;print(json.load(open('$O/$tag-r$r.eval.json'))['mse_missing'])")"
  done
done
