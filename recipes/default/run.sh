#!/usr/bin/env bash
# The recipe of the bundled default model, in re-runnable stages (icefall style).
#
#   bash recipes/default/run.sh [--stage N] [--stop-stage N] [--data DIR] [--cathy DIR] [--fsdd DIR] [--config YAML]
#        [--finetune-epochs N]
#
# Stages: 1 Cathy manifests, 2 FSDD manifests, 3 synthetic corpus (TTS; about an hour on 2
# cores), 4 train: $config's run, then a warm restart from its last checkpoint (a fresh cosine
# schedule, peak lr 7.5e-4, a new data order, exporting the last step: best-of-dev would pick
# FSDD dev noise; --finetune-epochs 0 skips it), 5 evaluate on every dev set (greedy), 6 build a 3-gram LM, tune alpha/beta
# and evaluate with it, 7 install model and LM as the bundled default, the card carrying the
# dev WER of stages 5 and 6.
# Cathy and FSDD come from ../shared/data here; elsewhere clone
# github.com/rhasspy/dataset-voice-cathy and github.com/Jakobovski/free-spoken-digit-dataset.
set -euo pipefail
cd "$(dirname "$0")/../.."

stage=1; stop_stage=7
data=data
cathy=../shared/data/cathy
fsdd=../shared/data/fsdd
config=recipes/default/uni.yaml
hours=8
finetune_epochs=8
while [ $# -gt 0 ]; do
  case "$1" in
    --stage) stage=$2; shift 2 ;;
    --stop-stage) stop_stage=$2; shift 2 ;;
    --data) data=$2; shift 2 ;;
    --cathy) cathy=$2; shift 2 ;;
    --fsdd) fsdd=$2; shift 2 ;;
    --config) config=$2; shift 2 ;;
    --hours) hours=$2; shift 2 ;;
    --finetune-epochs) finetune_epochs=$2; shift 2 ;;
    *) echo "run.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
py=${PYTHON:-.venv/bin/python}
out=$(sed -n 's/^out_dir: *//p' "$config")
run() { [ "$stage" -le "$1" ] && [ "$stop_stage" -ge "$1" ]; }
log() { echo "== stage $1: $2" >&2; }

if run 1; then log 1 "Cathy: split train/dev by prompt"; $py recipes/cathy/prepare.py "$cathy" "$data/cathy"; fi
if run 2; then log 2 "FSDD: split train/dev by speaker"; $py recipes/fsdd/prepare.py "$fsdd" "$data/fsdd"; fi
if run 3; then
  log 3 "synthetic multi-voice corpus ($hours h)"
  source scripts/apt.sh
  apt_install espeak-ng flite festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts wordnet-base \
      bible-kjv-text dict-devil sox
  $py recipes/synthetic/prepare.py "$data/synth" --cathy-dir "$data/cathy" --hours "$hours"
fi
first=$out
[ "$finetune_epochs" -gt 0 ] && out=$first-ft  # stages 5-7 take the restarted run's model
if run 4; then
  log 4 "train ($config)"
  $py -m asr train --config "$config" data_dir="$data" --resume
  if [ "$finetune_epochs" -gt 0 ]; then
    log 4 "warm restart from $first/last.pt: $finetune_epochs more epochs into $out"
    $py -m asr train --config "$config" data_dir="$data" out_dir="$out" init_from="$first/last.pt" lr=7.5e-4 \
        warmup_steps=100 epochs="$finetune_epochs" sorta_grad=false seed=1 export=last --resume
  fi
fi
sets="cathy fsdd synth"
report() {  # report NAME EVAL.json
  $py -c "import json,sys; r=json.load(open(sys.argv[1])); print(f\"{sys.argv[2]}: WER {r['wer']:.4f} CER {r['cer']:.4f} RTF {r['rtf']:.4f} ({r['utterances']} utterances)\")" "$2" "$1"
}
if run 5; then
  log 5 "evaluate $out/model.pt, greedy"
  for set in $sets; do
    $py -m asr evaluate "$data/$set/dev.tsv" --model "$out/model.pt" --no-lm --json > "$out/dev_$set.json"
    report "$set" "$out/dev_$set.json"
  done
fi
if run 6; then
  log 6 "3-gram LM from the synthetic corpus's text (no dev sentence), alpha/beta tuned on Cathy dev"
  $py -m asr lm build "$data/synth/text/sentences.tsv" -o "$out/lm.bin" --order 3 \
      --exclude "$data/cathy/dev.tsv" --exclude "$data/fsdd/dev.tsv" --exclude "$data/synth/dev.tsv"
  $py -m asr tune-lm "$data/cathy/dev.tsv" --model "$out/model.pt" --lm "$out/lm.bin" \
      --alphas=0.25,0.5,0.75,1,1.25,1.5 --betas=-1,0,1,2,3 --json > "$out/tune_lm.json"
  read -r alpha beta < <($py -c "import json,sys; b=json.load(open(sys.argv[1]))['best']; print(b['alpha'], b['beta'])" "$out/tune_lm.json")
  echo "best alpha $alpha beta $beta" >&2
  for set in $sets; do
    $py -m asr evaluate "$data/$set/dev.tsv" --model "$out/model.pt" --lm "$out/lm.bin" --alpha "$alpha" \
        --beta "$beta" --json > "$out/dev_${set}_lm.json"
    report "$set + LM" "$out/dev_${set}_lm.json"
  done
fi
if run 7; then
  log 7 "install $out/model.pt and its LM as asr/models/default.pt, default-lm.bin"
  mkdir -p asr/models
  cp "$out/model.pt" asr/models/default.pt
  cp "$out/lm.bin" asr/models/default-lm.bin
  cp "$out/lm.bin.vocab" asr/models/default-lm.bin.vocab
  $py recipes/default/card.py asr/models/default.pt --config "$config" \
      --dev cathy="$out/dev_cathy.json" --dev fsdd="$out/dev_fsdd.json" --dev synth="$out/dev_synth.json" \
      --lm asr/models/default-lm.bin --tune "$out/tune_lm.json" \
      --dev-lm cathy="$out/dev_cathy_lm.json" --dev-lm fsdd="$out/dev_fsdd_lm.json" --dev-lm synth="$out/dev_synth_lm.json"
  ls -l asr/models/
fi
