#!/usr/bin/env bash
# Set up asr on a Debian/Ubuntu machine: system packages, a virtual environment in .venv,
# and the package, every Python package at the version the lock, constraints.txt, names
# (scripts/lock.sh refreshes it). Safe to run again: it only adds what is missing, and brings a
# package that drifted from the lock back to it.
#
#   bash scripts/setup.sh                # to use asr:        .venv/bin/asr ...  (the runtime: no torch)
#   bash scripts/setup.sh --train        # also torch, to train models and `asr export` them
#   bash scripts/setup.sh --dev          # to run the tests:  .venv/bin/python -m pytest  (torch too)
#   bash scripts/setup.sh --kenlm-tools  # also KenLM's lmplz and build_binary, for `asr lm build`
#
# Without options nothing of torch is downloaded: transcribing, listening, serving and evaluating
# run on ONNX Runtime (docs/runtime.md). --dev builds KenLM's tools too (the tests build language
# models); compiling them takes a few minutes once per machine (scripts/install-kenlm-tools.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

dev=0
train=0
kenlm_tools=0
for arg in "$@"; do
  case "$arg" in
    --dev) dev=1; kenlm_tools=1 ;;
    --train) train=1 ;;
    --kenlm-tools) kenlm_tools=1 ;;
    *) echo "setup.sh: unknown option $arg (use --dev, --train or --kenlm-tools)" >&2; exit 2 ;;
  esac
done

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

# System packages: PortAudio for the microphone, a C++ compiler for the kenlm module, and for
# the tests a PulseAudio virtual microphone, ffmpeg (asr reads .m4a, .webm, ... through it where
# it is installed; the tests make such files with it), headless Chromium with its WebDriver and
# Firefox ESR (the page of `asr serve` in two real browsers; Firefox is driven over the
# WebDriver BiDi protocol it speaks itself, so it needs no geckodriver).
packages=(python3-venv python3-dev build-essential libsndfile1 libportaudio2)
if [ "$dev" = 1 ]; then packages+=(pulseaudio pulseaudio-utils libasound2-plugins sox ffmpeg chromium chromium-driver firefox-esr); fi
source scripts/apt.sh
apt_install "${packages[@]}" || echo "setup.sh: carrying on without these system packages" >&2

python=${PYTHON:-python3}
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "setup.sh: asr needs Python >= 3.11 ($python is $("$python" --version 2>&1)); set PYTHON=/path/to/python3.11" >&2
  exit 1
fi
if [ ! -x .venv/bin/python ]; then
  say "creating .venv"
  "$python" -m venv .venv
fi
lock=constraints.txt
.venv/bin/python -m pip install -q -c "$lock" pip setuptools
extras=()
if [ "$dev" = 1 ]; then extras+=(dev); fi
if [ "$train" = 1 ]; then extras+=(train); fi
if [ ${#extras[@]} -gt 0 ]; then
  target=".[$(IFS=,; echo "${extras[*]}")]"
  say "installing asr, torch and the other dependencies at the versions of $lock (torch is a large download the first time)"
else
  target="."
  say "installing asr and its runtime dependencies at the versions of $lock (no torch: see --train)"
fi
.venv/bin/python -m pip install -q -c "$lock" -e "$target"
if [ ${#extras[@]} -gt 0 ]; then
  # A torch/torchaudio pair that cannot load together breaks training and export: say so here.
  .venv/bin/python -P asr/deps.py
fi
if [ "$kenlm_tools" = 1 ]; then
  # KenLM's lmplz and build_binary for `asr lm build` (compiled once per machine, then cached).
  bash scripts/install-kenlm-tools.sh .venv
fi
say "ready: .venv/bin/asr --help"
