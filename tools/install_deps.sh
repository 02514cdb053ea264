#!/usr/bin/env bash
# Install what airmark needs on a fresh machine: system libraries (Debian/Ubuntu, when
# root or sudo is available) and the Python package with its extras.
#   --corpus: only the Debian packages the evaluation corpus is cut from (make corpus).
set -euo pipefail
PY=${PY:-python3}
need=()
if [ "${1:-}" = "--corpus" ]; then
  for p in supertux-data neverball-data xmoto-data extremetuxracer-data hydrogen-drumkits espeak-ng; do
    dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
  done
  corpus_only=1
else
  corpus_only=0
fi
[ "$corpus_only" = 1 ] || command -v ffmpeg >/dev/null 2>&1 || need+=(ffmpeg)
if [ "$corpus_only" = 0 ]; then
  command -v espeak-ng >/dev/null 2>&1 || need+=(espeak-ng)
  command -v sox >/dev/null 2>&1 || need+=(sox)
  ldconfig -p 2>/dev/null | grep -q libsndfile || need+=(libsndfile1)
  ldconfig -p 2>/dev/null | grep -q libportaudio || need+=(libportaudio2)
fi
if [ ${#need[@]} -gt 0 ]; then
  if command -v apt-get >/dev/null 2>&1; then
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    echo "installing system packages: ${need[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
  else
    echo "warning: please install ${need[*]} with your system's package manager" >&2
  fi
fi
[ "$corpus_only" = 1 ] || $PY -m pip install -q --disable-pip-version-check -e ".[dev]"
# The PIO assembler, to check firmware/airmark_capture_pio.py's program words in the tests.
# --no-deps: it is one pure-Python file; its declared Adafruit-Blinka is for hardware only.
[ "$corpus_only" = 1 ] || $PY -m pip install -q --disable-pip-version-check --no-deps \
    "adafruit-circuitpython-pioasm==1.3.8"
