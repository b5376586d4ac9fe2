#!/usr/bin/env bash
# Set up asr on a Debian/Ubuntu machine: system packages, a virtual environment in .venv,
# and the package (with test tools when --dev is given). Safe to run again: it only adds
# what is missing.
#
#   bash scripts/setup.sh          # to use asr:        .venv/bin/asr ...
#   bash scripts/setup.sh --dev    # to run the tests:  .venv/bin/python -m pytest
set -euo pipefail
cd "$(dirname "$0")/.."

dev=0
for arg in "$@"; do
  case "$arg" in
    --dev) dev=1 ;;
    *) echo "setup.sh: unknown option $arg (use --dev)" >&2; exit 2 ;;
  esac
done

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

# System packages: PortAudio for the microphone, a C++ compiler for kenlm, and for the
# tests a PulseAudio virtual microphone.
packages=(python3-venv python3-dev build-essential libsndfile1 libportaudio2)
if [ "$dev" = 1 ]; then packages+=(pulseaudio pulseaudio-utils libasound2-plugins sox); fi
source scripts/apt.sh
apt_install "${packages[@]}" || true

python=${PYTHON:-python3}
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "setup.sh: asr needs Python >= 3.11 ($python is $("$python" --version 2>&1)); set PYTHON=/path/to/python3.11" >&2
  exit 1
fi
if [ ! -x .venv/bin/python ]; then
  say "creating .venv"
  "$python" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
say "installing asr and its dependencies (torch 2.11 is a large download the first time)"
if [ "$dev" = 1 ]; then
  .venv/bin/python -m pip install -q -e ".[dev]"
else
  .venv/bin/python -m pip install -q -e .
fi
# KenLM's lmplz and build_binary for `asr lm build` (compiled once, then cached).
bash scripts/install-kenlm-tools.sh .venv
say "ready: .venv/bin/asr --help"
