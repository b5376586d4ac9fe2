#!/usr/bin/env bash
# Build KenLM's estimator `lmplz` and `build_binary` (used by `asr lm build`) from the kenlm
# source package on PyPI -- the same release as the kenlm Python module asr queries models
# with -- and put them in the virtual environment's bin/. PyPI's kenlm wheels and Debian
# have only the query code, not these programs.
#
#   bash scripts/install-kenlm-tools.sh [VENV]      # VENV defaults to .venv
#
# Needs a C++ compiler, cmake and Boost (program_options, system, thread, test), which it
# installs with apt-get when missing. The programs are cached in ~/.cache/asr/kenlm-VERSION
# so that another checkout on the same machine reuses them. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${1:-.venv}
python="$venv/bin/python"
say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

if [ -x "$venv/bin/lmplz" ] && [ -x "$venv/bin/build_binary" ]; then
  exit 0
fi
version=$("$python" -c 'import importlib.metadata as m; print(m.version("kenlm"))' 2>/dev/null || echo 0.3.0)
cache="${XDG_CACHE_HOME:-$HOME/.cache}/asr/kenlm-$version"
if [ ! -x "$cache/lmplz" ] || [ ! -x "$cache/build_binary" ]; then
  packages=(build-essential cmake libboost-program-options-dev libboost-system-dev libboost-thread-dev
            libboost-test-dev zlib1g-dev)
  source scripts/apt.sh
  apt_install "${packages[@]}" || exit 1
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  say "building KenLM $version lmplz and build_binary (a few minutes)"
  "$python" -m pip download -q --no-deps --no-binary kenlm -d "$work" "kenlm==$version"
  tar -xzf "$work"/kenlm-*.tar.gz -C "$work"
  src=$(find "$work" -maxdepth 1 -type d -name 'kenlm-*' | head -1)
  cmake -S "$src" -B "$work/build" -DCMAKE_BUILD_TYPE=Release >"$work/cmake.log" 2>&1 \
    || { tail -20 "$work/cmake.log" >&2; exit 1; }
  make -C "$work/build" -j"$(nproc)" lmplz build_binary >"$work/make.log" 2>&1 \
    || { tail -20 "$work/make.log" >&2; exit 1; }
  mkdir -p "$cache"
  cp "$work/build/bin/lmplz" "$work/build/bin/build_binary" "$cache/"
fi
cp "$cache/lmplz" "$cache/build_binary" "$venv/bin/"
say "installed lmplz and build_binary in $venv/bin"
