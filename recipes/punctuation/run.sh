#!/usr/bin/env bash
# The bundled punctuation-and-casing model (asr/models/punctuation.onnx), in re-runnable stages.
#
#   bash recipes/punctuation/run.sh [--stage N] [--stop-stage N] [--data DIR] [--shared DIR]
#
# 0 the texts: Debian's sword-text-web and jargon-text (apt-get download, unpacked under
#   DATA/punct/src; nothing is installed); 1 prepare.py: train/dev/test paragraphs, the Cathy and LJ
#   dev prompts held out (DATA/cathy/dev.tsv and DATA/ljprompts/dev.tsv, made by
#   recipes/default/run.sh stages 1 and 5); 2 train from scratch, sources drawn as their words
#   (10 000 steps, about 18 CPU minutes on one core); 3 continue 4 000 steps with the speech
#   prompts drawn more often (web 0.7, jargon 0.2, prompts 0.1); 4 score it (evaluate.py) and
#   export it, with the figures in its card, to asr/models/punctuation.onnx.
set -euo pipefail
stage=0; stop_stage=4; data=data; shared=../shared/data
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
  nice -n 10 $py recipes/punctuation/train.py "$out" "$exp-speech" --init "$exp/best.pt" \
    --shares web=0.7,jargon=0.2,prompts=0.1 --steps 4000 --lr 1e-3 --minutes 60
fi
if run 4; then
  $py recipes/punctuation/train.py "$out" "$exp-speech" --export "$exp-speech/punctuation.onnx"
  $py recipes/punctuation/evaluate.py "$out" --model "$exp-speech/punctuation.onnx" --json \
    --refs cathy="$data/cathy/dev.tsv" ljprompts="$out/ljprompts-dev-punctuated.tsv" > "$exp-speech/scores.json"
  $py -c "import json,sys; print(json.dumps({'scores': json.load(open(sys.argv[1]))}))" "$exp-speech/scores.json" \
    > "$exp-speech/card.json"
  $py recipes/punctuation/train.py "$out" "$exp-speech" --export asr/models/punctuation.onnx --card "$exp-speech/card.json"
  $py recipes/punctuation/evaluate.py "$out" --refs cathy="$data/cathy/dev.tsv" ljprompts="$out/ljprompts-dev-punctuated.tsv"
fi
