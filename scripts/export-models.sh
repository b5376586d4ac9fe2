#!/usr/bin/env bash
# Export the bundled torch models (asr/models/default.pt, default-bi.pt) to the runtime form the
# commands run (asr/models/default.npz, default-bi.npz; docs/runtime.md). Run it again whenever a
# .pt changes (recipes/default/run.sh does, after installing a model): tests/test_default_model.py
# fails while a .npz and its .pt disagree. Needs torch and onnx (the train or dev extra).
# The streaming model ships in int8 (`asr export --int8`: twice the batched streams per core),
# the offline one in float (one 30-s window at a time: int8's per-step Loop costs more than the
# float GRU op saves there); docs/runtime.md has the measurements.
#
#   bash scripts/export-models.sh            # both, with .venv/bin/python
#   PYTHON=python3 bash scripts/export-models.sh default-bi
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-.venv/bin/python}
names=("$@")
[ ${#names[@]} -gt 0 ] || names=(default default-bi)
for name in "${names[@]}"; do
  if [ ! -f "asr/models/$name.pt" ]; then
    echo "export-models.sh: asr/models/$name.pt does not exist" >&2
    exit 2
  fi
  form=()
  [ "$name" = default ] && form=(--int8)
  "$py" -m asr export "asr/models/$name.pt" -o "asr/models/$name.npz" "${form[@]}"
done
