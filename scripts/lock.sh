#!/usr/bin/env bash
# Refresh constraints.txt, the lock that scripts/setup.sh and CI install every Python package
# from: resolve pyproject.toml's ranges afresh (with every extra) in a scratch virtual
# environment, freeze what pip chose, then install that into .venv (setup.sh --dev) and run the
# test suite. Run it deliberately (a new torch, a fix upstream), read `git diff constraints.txt`,
# and commit the new lock only when the tests pass.
#
#   bash scripts/lock.sh             # resolve, write constraints.txt, setup.sh --dev, pytest
#   bash scripts/lock.sh --no-test   # resolve and write constraints.txt only
#
# To move torch, change the torch/torchaudio pair in pyproject.toml first (the two must be
# releases that load together), then run this.
set -euo pipefail
cd "$(dirname "$0")/.."

test=1
for arg in "$@"; do
  case "$arg" in
    --no-test) test=0 ;;
    *) echo "lock.sh: unknown option $arg (use --no-test)" >&2; exit 2 ;;
  esac
done
say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

python=${PYTHON:-python3}
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
say "resolving pyproject.toml's dependencies with every extra in a scratch environment"
"$python" -m venv "$scratch/venv"
"$scratch/venv/bin/python" -m pip install -q --upgrade pip
"$scratch/venv/bin/python" -m pip install -q -e ".[dev,train,bench]"
{
  echo "# The lock: the exact versions of every Python package asr is tested with, for"
  echo "# pip install -c constraints.txt (scripts/setup.sh, .ci/run). Made by scripts/lock.sh on"
  echo "# $(date -u +%Y-%m-%d) with $("$scratch/venv/bin/python" --version) on $(uname -sm); do not edit by hand."
  "$scratch/venv/bin/python" -m pip freeze --all --exclude-editable | grep -viE '^(asr|wheel)=='
} >"$scratch/constraints.txt"
"$scratch/venv/bin/python" -P asr/deps.py
if cmp -s <(grep -v '^#' "$scratch/constraints.txt") <(grep -v '^#' constraints.txt 2>/dev/null); then
  say "constraints.txt unchanged: pyproject.toml's ranges resolve to the locked versions"
else
  mv "$scratch/constraints.txt" constraints.txt
  git --no-pager diff --stat -- constraints.txt || true
fi

if [ "$test" = 1 ]; then
  bash scripts/setup.sh --dev
  say "running the test suite on the new lock"
  if ! .venv/bin/python -m pytest -q; then
    say "tests FAILED on the new lock: do not commit constraints.txt (git checkout constraints.txt to go back)"
    exit 1
  fi
  say "tests pass on the new lock: commit constraints.txt"
fi
