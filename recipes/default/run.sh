#!/usr/bin/env bash
# The recipe of the bundled default model, in re-runnable stages (icefall style).
#
#   bash recipes/default/run.sh [--stage N] [--stop-stage N] [--data DIR] [--cathy DIR] [--fsdd DIR] [--config YAML]
#
# Stages: 1 Cathy manifests, 2 FSDD manifests, 3 synthetic corpus (TTS; about an hour on 2
# cores), 4 train, 5 evaluate on every dev set, 6 install as the bundled model, its card
# carrying the dev WER of stage 5.
# Cathy and FSDD come from ../shared/data here; elsewhere clone
# github.com/rhasspy/dataset-voice-cathy and github.com/Jakobovski/free-spoken-digit-dataset.
set -euo pipefail
cd "$(dirname "$0")/../.."

stage=1; stop_stage=6
data=data
cathy=../shared/data/cathy
fsdd=../shared/data/fsdd
config=recipes/default/uni.yaml
hours=8
while [ $# -gt 0 ]; do
  case "$1" in
    --stage) stage=$2; shift 2 ;;
    --stop-stage) stop_stage=$2; shift 2 ;;
    --data) data=$2; shift 2 ;;
    --cathy) cathy=$2; shift 2 ;;
    --fsdd) fsdd=$2; shift 2 ;;
    --config) config=$2; shift 2 ;;
    --hours) hours=$2; shift 2 ;;
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
if run 4; then log 4 "train ($config)"; $py -m asr train --config "$config" data_dir="$data" --resume; fi
if run 5; then
  log 5 "evaluate $out/model.pt"
  for set in cathy fsdd synth; do
    echo "-- $set dev" >&2
    $py -m asr evaluate "$data/$set/dev.tsv" --model "$out/model.pt" --json > "$out/dev_$set.json"
    $py -c "import json,sys; r=json.load(open(sys.argv[1])); print(f\"{sys.argv[2]}: WER {r['wer']:.4f} CER {r['cer']:.4f} RTF {r['rtf']:.4f} ({r['utterances']} utterances)\")" "$out/dev_$set.json" "$set"
  done
fi
if run 6; then
  log 6 "install $out/model.pt as asr/models/default.pt"
  mkdir -p asr/models
  cp "$out/model.pt" asr/models/default.pt
  $py recipes/default/card.py asr/models/default.pt --config "$config" \
      --dev cathy="$out/dev_cathy.json" --dev fsdd="$out/dev_fsdd.json" --dev synth="$out/dev_synth.json"
  ls -l asr/models/default.pt
fi
