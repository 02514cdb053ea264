#!/usr/bin/env bash
# Install what airmark needs on a fresh machine: system libraries (Debian/Ubuntu, when
# root or sudo is available) and the Python package with its extras.
set -euo pipefail
PY=${PY:-python3}
need=()
command -v ffmpeg >/dev/null 2>&1 || need+=(ffmpeg)
command -v espeak-ng >/dev/null 2>&1 || need+=(espeak-ng)
command -v sox >/dev/null 2>&1 || need+=(sox)
ldconfig -p 2>/dev/null | grep -q libsndfile || need+=(libsndfile1)
ldconfig -p 2>/dev/null | grep -q libportaudio || need+=(libportaudio2)
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
$PY -m pip install -q --disable-pip-version-check -e ".[dev]"
