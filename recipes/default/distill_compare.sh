#!/usr/bin/env bash
# Issue 26's comparison of distillation recipes at one short budget (recipes/default/README.md's table):
# every variant trains STEPS steps of distill.yaml's data and augmentation (same seed), then its last
# in-run dev line (greedy WER per set, cosine to the teacher) goes into OUT/table.tsv.
#   bash recipes/default/distill_compare.sh DATA OUT [STEPS]
# Variants: from the bundled streaming model -- plain CTC (the control), joint CTC + regression of the
# top / a middle / two GRU layers, regression first (half the steps) then joint; from scratch -- joint
# with lookahead 6, 12 and 25 frames (120, 240, 500 ms). A variant with a model.pt is not run again.
set -euo pipefail
data=${1:?DATA folder}; out=${2:?OUT folder}; steps=${3:-300}
here=$(cd "$(dirname "$0")/../.." && pwd)
asr=${ASR:-$here/.venv/bin/asr}
common=(--config "$here/recipes/default/distill.yaml" data_dir="$data" max_steps="$steps" dev_every="$steps"
        dev_max_utterances=150 checkpoint_every=100)
bundled=init_from="$here/asr/models/default.pt"
run() {  # name, overrides...
  local name=$1; shift
  [[ -f "$out/$name/model.pt" ]] && return 0
  mkdir -p "$out"
  "$asr" train "${common[@]}" out_dir="$out/$name" "$@" --device cpu --no-progress --resume-if-any \
    > "$out/$name.log" 2>&1 \
    || { echo "variant $name failed: see $out/$name.log" >&2; return 1; }
}
run ctc "$bundled" distill_weight=0
run joint-top "$bundled"
run joint-mid "$bundled" 'distill_layers=[1]'
run joint-two "$bundled" 'distill_layers=[1,3]'
half=$((steps / 2))
run reg-first-a "$bundled" ctc_weight=0 max_steps="$half" dev_every="$half"
run reg-first init_from="$out/reg-first-a/model.pt" max_steps="$half" dev_every="$half"
run scratch-la6 model.lookahead=6
run scratch-la12 model.lookahead=12
run scratch-la25 model.lookahead=25
# the table: the last dev line of every variant
{
  echo -e "variant\tdev line"
  for log in "$out"/*.log; do
    echo -e "$(basename "$log" .log)\t$(grep ' dev: ' "$log" | tail -1 | sed 's/.* dev: //')"
  done
} > "$out/table.tsv"
cat "$out/table.tsv"
