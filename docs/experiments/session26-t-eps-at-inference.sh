#!/bin/bash
# Does a trained run complete better when its single-step ensemble evaluates the network (and
# the interpolant under its skip) at a lower noise level than the t_eps it was trained down to?
# For each run directory given (bench runs, e.g. docs/bench/safrica/<case>/seed-0/run-prior;
# not in git): the run as trained (t_eps = 1e-3), then copies whose config.toml says
# `t_eps = 1e-4` and `1e-5`, each imputed with the last weights and the run's default
# contexts as the bench imputes, and scored against the truth of the run's test.npz.
# B: the lacuna binary (default `lacuna`); OUT: where the copies and completions go.
set -euo pipefail
B=${B:-lacuna}
O=${OUT:-t-eps-at-inference-out}; mkdir -p $O
for R in "$@"; do
  T=$(dirname $R)/test.npz
  tag=$(echo "$R" | tr '/' '_')
  echo "== $R"
  for e in 1e-3 1e-4 1e-5; do
    run=$R
    if [ $e != 1e-3 ]; then
      run=$O/$tag-run-$e
      rm -rf $run && mkdir -p $run
      (cd $R && tar cf - --exclude=checkpoint.safetensors .) | (cd $run && tar xf -)
      sed -i "s/^t_eps = .*/t_eps = $e/" $run/config.toml
      grep -q "^t_eps = $e$" $run/config.toml
    fi
    s=$(date +%s)
    $B impute --run $run --data $T --out $O/$tag-$e.npz --last --quiet > /dev/null
    $B eval --truth $T --pred $O/$tag-$e.npz --quiet > /dev/null
    echo "t_eps $e: truth MSE missing $(python3 -c "import json;print(json.load(open('$O/$tag-$e.eval.json'))['mse_missing'])") ($(( $(date +%s) - s )) s)"
  done
done
