#!/usr/bin/env bash
# Rebuild tests/data/lm/cathy-3gram.arpa.gz: a 3-gram (modified Kneser-Ney, KenLM lmplz) of the
# Cathy corpus' training prompts (CMU ARCTIC prompts, recipes/cathy), which include the eight
# test clips' sentences; the dev prompts are excluded.
#
#   bash tests/data/lm/make_lm.sh [CATHY_DIR]     # CATHY_DIR: recipes/cathy's output (train.tsv, dev.tsv)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cathy=${1:-/work/data/cathy}
cd "$here/../../.."
python=${PYTHON:-.venv/bin/python}
"$python" -m asr lm build "$cathy/train.tsv" tests/data/cathy/manifest.tsv -o "$here/cathy-3gram.arpa" \
    --order 3 --exclude "$cathy/dev.tsv"
gzip -f -n "$here/cathy-3gram.arpa"
