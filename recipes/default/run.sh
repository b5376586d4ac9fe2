#!/usr/bin/env bash
# The recipe of the bundled default model, in re-runnable stages (icefall style).
#
#   bash recipes/default/run.sh [--stage N] [--stop-stage N] [--data DIR] [--shared DIR] [--config YAML]
#        [--finetune-epochs N] [--init-from MODEL] [--card-training TEXT]
#
# Stages: 1 Cathy manifests, 2 FSDD manifests, 3 synthetic corpus (TTS; about an hour on 2
# cores), 4 train: $config's run, then a warm restart from its last checkpoint (a fresh cosine
# schedule, peak lr 7.5e-4, a new data order, exporting the last step: best-of-dev would pick
# FSDD dev noise; --finetune-epochs 0 skips it), 5 manifests of the real corpora (AN4,
# speechocean762, Allison, LJ Speech prompts and samples, wake words), 6 fine-tune stage 4's
# model on all the real speech (finetune.yaml; --init-from MODEL starts from another model,
# e.g. asr/models/default.pt on a machine without stage 4's run), 7 evaluate on every dev set
# (greedy), 8 build a general 3-gram LM (the synthetic corpus's text pool and every corpus's
# training transcripts, no dev sentence), tune alpha/beta on all dev sets together and
# evaluate with it, 9 install model and LM as the bundled default, the card carrying the dev
# WER of stages 7 and 8, and export it to the runtime form the commands run (asr/models/default.npz,
# `asr export`); 10 the offline model: stage 6's model widened to a bidirectional GRU
# (bi.yaml) and trained on the same speech (--init-from MODEL: another streaming model), then
# 1000 more steps from that run's model (a second cosine schedule, peak lr 5e-4), 11 its
# dev WER greedy and with the bundled LM (alpha/beta tuned for it), 12 install it as
# asr/models/default-bi.pt (`--model offline`), with its card, exported to default-bi.npz. 13 the file
# model that hears through Whisper tiny.en's encoder (whisper.yaml: the encoder's outputs cached
# once under DATA/encoder-cache, then a bidirectional GRU-CTC head trained on them), 14 its dev WER
# greedy and with the bundled LM, 15 install it as the offline model (asr/models/default-bi.pt and
# .npz): it beat the log-mel bidirectional model of stages 10-12 on every dev set, which retires. 16 the
# streaming model taught by Whisper tiny.en's encoder (distill.yaml: CTC + regression of its top GRU
# layer onto the teacher's cached outputs; from stage 6's model, or --init-from MODEL, e.g.
# asr/models/default.pt), 17 its dev WER greedy and with the bundled LM (and pooled over the six real
# sets; the README has the installed streaming model's), 18 install it as asr/models/default.pt (int8 .npz) -- only by hand, once
# stage 17 shows it better on the pooled dev sets with the LM. Each
# install stage can be re-run alone (--stage 12 --stop-stage 12) to refresh a model's export.
# The corpora come from ../shared/data here (--shared; one folder each, named as there); elsewhere
# each recipe's README says where to get its corpus (recipes/<corpus>/prepare.py reads the public
# layout too).
set -euo pipefail
cd "$(dirname "$0")/../.."

stage=1; stop_stage=17
data=data
shared=../shared/data
config=recipes/default/uni.yaml
hours=8
finetune_epochs=8
init_from=""
card_training=""  # stage 9: the card's `training` line, where the run's own (written by asr train) is not enough
while [ $# -gt 0 ]; do
  case "$1" in
    --stage) stage=$2; shift 2 ;;
    --stop-stage) stop_stage=$2; shift 2 ;;
    --data) data=$2; shift 2 ;;
    --shared) shared=$2; shift 2 ;;
    --config) config=$2; shift 2 ;;
    --hours) hours=$2; shift 2 ;;
    --finetune-epochs) finetune_epochs=$2; shift 2 ;;
    --init-from) init_from=$2; shift 2 ;;
    --card-training) card_training=$2; shift 2 ;;
    *) echo "run.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
py=${PYTHON:-.venv/bin/python}
out=$(sed -n 's/^out_dir: *//p' "$config")
run() { [ "$stage" -le "$1" ] && [ "$stop_stage" -ge "$1" ]; }
log() { echo "== stage $1: $2" >&2; }

if run 1; then log 1 "Cathy: split train/dev by prompt"; $py recipes/cathy/prepare.py "$shared/cathy" "$data/cathy"; fi
if run 2; then log 2 "FSDD: split train/dev by speaker"; $py recipes/fsdd/prepare.py "$shared/fsdd" "$data/fsdd"; fi
if run 3; then
  log 3 "synthetic multi-voice corpus ($hours h)"
  source scripts/apt.sh
  apt_install espeak-ng flite festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts wordnet-base \
      bible-kjv-text dict-devil sox
  $py recipes/synthetic/prepare.py "$data/synth" --cathy-dir "$data/cathy" --hours "$hours"
fi
first=$out
[ "$finetune_epochs" -gt 0 ] && out=$first-ft  # stage 6 starts from the restarted run's model
if run 4; then
  log 4 "train ($config)"
  $py -m asr train --config "$config" data_dir="$data" --resume-if-any
  if [ "$finetune_epochs" -gt 0 ]; then
    log 4 "warm restart from $first/last.pt: $finetune_epochs more epochs into $out"
    $py -m asr train --config "$config" data_dir="$data" out_dir="$out" init_from="$first/last.pt" lr=7.5e-4 \
        warmup_steps=100 epochs="$finetune_epochs" sorta_grad=false seed=1 export=last --resume-if-any
  fi
fi
if run 5; then
  log 5 "real corpora: dev sets split off by speaker (by prompt for one-voice corpora)"
  $py recipes/an4/prepare.py "$shared/an4" "$data/an4" --dev-speakers 8
  $py recipes/speechocean762/prepare.py "$shared/speechocean762" "$data/so762" --dev-speakers 10
  $py recipes/allison/prepare.py "$shared/allison" "$data/allison"
  $py recipes/ljprompts/prepare.py "$shared/ljprompts_matthes" "$data/ljprompts"
  $py recipes/ljspeech/prepare.py "$shared/ljspeech_samples" "$data/ljspeech"
  $py recipes/keywords/prepare.py "$shared/keywords_precise" "$data/kw_precise"
  $py recipes/keywords/prepare.py "$shared/keywords_picovoice" "$data/kw_picovoice"
  $py recipes/speech_commands/prepare.py "$shared/speech_commands_sample" "$data/speech_commands"  # dev only
fi
ft_config=recipes/default/finetune.yaml
real=$(sed -n 's/^out_dir: *//p' "$ft_config")
if run 6; then
  start=${init_from:-$out/model.pt}
  log 6 "fine-tune $start on all real speech ($ft_config) into $real"
  $py -m asr train --config "$ft_config" data_dir="$data" init_from="$start" --resume-if-any
fi
out=$real
sets="an4 so762 cathy fsdd allison ljprompts"
[ -f "$data/speech_commands/dev.tsv" ] && sets="$sets speech_commands"
[ -f "$data/synth/dev.tsv" ] && sets="$sets synth"
report() {  # report NAME EVAL.json
  $py -c "import json,sys; r=json.load(open(sys.argv[1])); print(f\"{sys.argv[2]}: WER {r['wer']:.4f} CER {r['cer']:.4f} RTF {r['rtf']:.4f} ({r['utterances']} utterances)\")" "$2" "$1"
}
evaluate_greedy() {  # evaluate_greedy RUN_DIR: every dev set, greedy -> RUN_DIR/dev_SET.json
  for set in $sets; do
    $py -m asr evaluate "$data/$set/dev.tsv" --model "$1/model.pt" --no-lm --json > "$1/dev_$set.json"
    report "$set" "$1/dev_$set.json"
  done
}
evaluate_lm() {  # evaluate_lm RUN_DIR LM: alpha/beta tuned on every dev set at once (up to 100
  # utterances of each, so no one corpus decides), then every dev set -> RUN_DIR/dev_SET_lm.json
  $py - "$1/dev_all.tsv" $(for set in $sets; do echo "$data/$set/dev.tsv"; done) <<'PY'
import sys
from asr.data import read_manifest, write_manifest
write_manifest([u for path in sys.argv[2:] for u in read_manifest(path)[:100]], sys.argv[1])
PY
  $py -m asr tune-lm "$1/dev_all.tsv" --model "$1/model.pt" --lm "$2" \
      --alphas=0.25,0.5,0.75,1,1.25 --betas=-1,0,1,2 --json > "$1/tune_lm.json"
  read -r alpha beta < <($py -c "import json,sys; b=json.load(open(sys.argv[1]))['best']; print(b['alpha'], b['beta'])" "$1/tune_lm.json")
  echo "best alpha $alpha beta $beta" >&2
  for set in $sets; do
    $py -m asr evaluate "$data/$set/dev.tsv" --model "$1/model.pt" --lm "$2" --alpha "$alpha" \
        --beta "$beta" --json > "$1/dev_${set}_lm.json"
    report "$set + LM" "$1/dev_${set}_lm.json"
  done
  pooled "$1" _lm
}
pooled() {  # pooled RUN_DIR [_lm]: word-weighted WER over the six real dev sets (Speech Commands apart)
  $py - "$1" "${2:-}" <<'PY'
import json, sys
errors = words = 0
for name in "an4 so762 cathy fsdd allison ljprompts".split():
    r = json.load(open(f"{sys.argv[1]}/dev_{name}{sys.argv[2]}.json"))
    errors += r["substitutions"] + r["deletions"] + r["insertions"]
    words += r["words"]
print(f"pooled{' + LM' if sys.argv[2] else ''}: WER {errors / words:.4f} ({words} words)")
PY
}
install_model() {  # install_model RUN_DIR asr/models/NAME.pt CONFIG: the model, its card with the dev WER, its export
  if [ ! -f "$1/model.pt" ] && [ -f "$2" ]; then
    echo "$1/model.pt is not here: exporting the installed $2 as it is" >&2
    PYTHON=$py bash scripts/export-models.sh "$(basename "${2%.pt}")"
    return
  fi
  cp "$1/model.pt" "$2"
  devs=(); devs_lm=()
  for set in $sets; do
    devs+=(--dev "$set=$1/dev_$set.json"); devs_lm+=(--dev-lm "$set=$1/dev_${set}_lm.json")
  done
  $py recipes/default/card.py "$2" --config "$3" "${devs[@]}" \
      --lm asr/models/default-lm.bin --tune "$1/tune_lm.json" "${devs_lm[@]}" ${card_training:+--set "training=$card_training"}
  # the runtime form the commands run (ONNX Runtime, no torch; the streaming model in int8);
  # tests/test_default_model.py checks they agree
  PYTHON=$py bash scripts/export-models.sh "$(basename "${2%.pt}")"
}
if run 7; then
  log 7 "evaluate $out/model.pt, greedy"
  evaluate_greedy "$out"
fi
if run 8; then
  log 8 "general 3-gram LM: the synthetic text pool + every corpus's training transcripts, no dev sentence"
  bash scripts/install-kenlm-tools.sh "$(dirname "$(dirname "$py")")"  # lmplz, build_binary (once)
  if [ ! -f "$data/synth/text/sentences.tsv" ]; then
    $py recipes/synthetic/prepare.py "$data/synth" --cathy-dir "$data/cathy" --stage text
  fi
  texts=("$data/synth/text/sentences.tsv")
  excludes=()
  for set in an4 so762 cathy fsdd allison ljprompts ljspeech kw_precise kw_picovoice; do
    texts+=("$data/$set/train.tsv")
    excludes+=(--exclude "$data/$set/dev.tsv")
  done
  [ -f "$data/synth/dev.tsv" ] && excludes+=(--exclude "$data/synth/dev.tsv")
  $py -m asr lm build "${texts[@]}" "${excludes[@]}" -o "$out/lm.bin" --order 3
  evaluate_lm "$out" "$out/lm.bin"
fi
if run 9; then
  log 9 "install $out/model.pt and its LM as asr/models/default.pt (and .npz), default-lm.bin"
  mkdir -p asr/models
  cp "$out/lm.bin" asr/models/default-lm.bin
  cp "$out/lm.bin.vocab" asr/models/default-lm.bin.vocab
  install_model "$out" asr/models/default.pt "$ft_config"
  ls -l asr/models/
fi
bi_config=recipes/default/bi.yaml
bi=$(sed -n 's/^out_dir: *//p' "$bi_config")
bi_more=$bi-more  # the second run of stage 10 (the curve was still falling after the first)
if run 10; then
  start=${init_from:-$real/model.pt}
  log 10 "the offline model: $start widened to a bidirectional GRU, trained on all real speech ($bi_config) into $bi"
  $py -m asr train --config "$bi_config" data_dir="$data" init_from="$start" --resume-if-any
  log 10 "continue $bi/model.pt: 1000 more steps from a new warm-up (peak lr 5e-4) into $bi_more"
  $py -m asr train --config "$bi_config" data_dir="$data" out_dir="$bi_more" init_from="$bi/model.pt" \
      max_steps=1000 lr=5e-4 warmup_steps=50 seed=3 --resume-if-any
fi
bi=$bi_more  # stages 11 and 12: the continued run
if run 11; then
  log 11 "evaluate $bi/model.pt, greedy and with stage 8's LM (alpha/beta tuned for it)"
  evaluate_greedy "$bi"
  evaluate_lm "$bi" asr/models/default-lm.bin
fi
if run 12; then
  log 12 "install $bi/model.pt as asr/models/default-bi.pt and .npz (\`--model offline\`, the default for files)"
  install_model "$bi" asr/models/default-bi.pt "$bi_config"
  ls -l asr/models/
fi
whisper_config=recipes/default/whisper.yaml
whisper_run=$(sed -n 's/^out_dir: *//p' "$whisper_config")
if run 13; then
  log 13 "the file model on Whisper tiny.en's encoder ($whisper_config into $whisper_run): the encoder's outputs cached once, then the GRU head trained"
  $py -m asr train --config "$whisper_config" data_dir="$data" ${init_from:+init_from="$init_from"} --resume-if-any
fi
if run 14; then
  log 14 "evaluate $whisper_run/model.pt, greedy and with stage 8's LM (alpha/beta tuned for it)"
  evaluate_greedy "$whisper_run"
  evaluate_lm "$whisper_run" asr/models/default-lm.bin
fi
if run 15; then
  log 15 "install $whisper_run/model.pt as asr/models/default-bi.pt and .npz (\`--model offline\`, the default for files)"
  install_model "$whisper_run" asr/models/default-bi.pt "$whisper_config"
  ls -l asr/models/
fi
distill_config=recipes/default/distill.yaml
distill_run=$(sed -n 's/^out_dir: *//p' "$distill_config")
if run 16; then
  start=${init_from:-$real/model.pt}
  log 16 "the streaming model taught by Whisper tiny.en's encoder ($distill_config from $start into $distill_run)"
  $py -m asr train --config "$distill_config" data_dir="$data" init_from="$start" --resume-if-any
fi
if run 17; then
  log 17 "evaluate $distill_run/model.pt, greedy and with stage 8's LM (alpha/beta tuned for it)"
  evaluate_greedy "$distill_run"
  pooled "$distill_run"
  evaluate_lm "$distill_run" asr/models/default-lm.bin
fi
if run 18; then
  log 18 "install $distill_run/model.pt as asr/models/default.pt and its int8 .npz (the streaming model)"
  install_model "$distill_run" asr/models/default.pt "$distill_config"
  ls -l asr/models/
fi
