#!/usr/bin/env bash
# The bundled punctuation-and-casing model (asr/models/punctuation.onnx), in re-runnable stages.
#
#   bash recipes/punctuation/run.sh [--stage N] [--stop-stage N] [--data DIR] [--shared DIR]
#
# 0 the texts: Debian's sword-text-web and jargon-text (apt-get download, unpacked under
#   DATA/punct/src; nothing is installed); 1 prepare.py: train/dev/test paragraphs, the Cathy and LJ
#   dev prompts held out (DATA/cathy/dev.tsv and DATA/ljprompts/dev.tsv, made by
#   recipes/default/run.sh stages 1 and 5); 2 train, sources drawn as their words (10 000 steps,
#   about 18 CPU minutes on one core; the best checkpoint on dev.txt is kept); 3 score it
#   (evaluate.py) and export it, with the figures in its card, to asr/models/punctuation.onnx.
set -euo pipefail
stage=0; stop_stage=3; data=data; shared=../shared/data
while [ $# -gt 0 ]; do
  case $1 in
    --stage) stage=$2; shift 2 ;;
    --stop-stage) stop_stage=$2; shift 2 ;;
    --data) data=$2; shift 2 ;;
    --shared) shared=$2; shift 2 ;;
    *) echo "run.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
py=${PYTHON:-python}
run() { [ "$stage" -le "$1" ] && [ "$stop_stage" -ge "$1" ]; }
out=$data/punct; src=$out/src; exp=$data/punct-exp
mkdir -p "$src"
web=$src/x/usr/share/sword/modules/texts/ztext/engWEB2015eb
jargon=$src/x/usr/share/doc/jargon-text/jargon.txt.gz
if run 0 && [ ! -e "$src/.done" ]; then
  (cd "$src" && apt-get download sword-text-web jargon-text && for deb in *.deb; do dpkg-deb -x "$deb" x; done)
  touch "$src/.done"
fi
if run 1; then
  $py recipes/punctuation/prepare.py "$out" --web "$web" --jargon "$jargon" \
    --prompts "$data/cathy/train.tsv" "$shared/ljprompts_matthes/manifest.tsv" "$shared/ljspeech_samples/manifest.tsv" \
    --exclude "$data/cathy/dev.tsv" "$data/ljprompts/dev.tsv"
  # the LJ dev prompts with their published (punctuated) texts, for stage 4's scores
  $py - "$data/ljprompts/dev.tsv" "$shared/ljprompts_matthes/manifest.tsv" "$out/ljprompts-dev-punctuated.tsv" <<'PY'
import csv, sys
dev, shared, out = sys.argv[1:]
rows = list(csv.DictReader(open(dev), delimiter="\t", quoting=csv.QUOTE_NONE))
text = {r["id"]: r["text"] for r in csv.DictReader(open(shared), delimiter="\t")}
with open(out, "w") as f:
    f.write("id\tpath\tseconds\tspeaker\ttext\n")
    f.writelines("\t".join([r["id"], r["path"], r["seconds"], r["speaker"], text[r["id"]]]) + "\n" for r in rows)
PY
fi
if run 2; then
  nice -n 10 $py recipes/punctuation/train.py "$out" "$exp" --steps 10000 --minutes 60
fi
if run 3; then
  # figures from reference words (evaluate.py) and from the bundled recogniser's transcripts
  # (`asr evaluate`, the offline model with its LM), written into the card of the exported model
  $py recipes/punctuation/train.py "$out" "$exp" --export asr/models/punctuation.onnx
  $py recipes/punctuation/evaluate.py "$out" --json \
    --refs cathy="$data/cathy/dev.tsv" ljprompts="$out/ljprompts-dev-punctuated.tsv" > "$exp/scores.json"
  $py -m asr evaluate "$data/cathy/dev.tsv" --json > "$exp/asr-cathy.json"
  $py -m asr evaluate "$out/ljprompts-dev-punctuated.tsv" --json > "$exp/asr-ljprompts.json"
  $py - "$exp" <<'PY'
import json, sys
exp = sys.argv[1]
card = {"scores_from_reference_words": json.load(open(f"{exp}/scores.json"))}
for name in ("cathy", "ljprompts"):
    r = json.load(open(f"{exp}/asr-{name}.json"))
    card[f"scores_from_transcripts_{name}_dev"] = {"wer": round(r["wer"], 4), **r["punctuation"]}
json.dump(card, open(f"{exp}/card.json", "w"))
PY
  $py recipes/punctuation/train.py "$out" "$exp" --export asr/models/punctuation.onnx --card "$exp/card.json"
  $py recipes/punctuation/evaluate.py "$out" --refs cathy="$data/cathy/dev.tsv" ljprompts="$out/ljprompts-dev-punctuated.tsv"
fi
