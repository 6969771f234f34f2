#!/bin/sh
# Darkroom bootstrap for Linux and macOS: uv if missing, then Darkroom as a uv tool, then
# the full-screen interface. Safe to run again: it upgrades in place.
#   ./install.sh            install and open Darkroom
#   ./install.sh --no-run   install only
set -eu

say() { printf '%s\n' "$*"; }
fail() { say "darkroom install: $*" >&2; exit 1; }

run_after=1
[ "${1:-}" = "--no-run" ] && run_after=0

# Where Darkroom's source is: this script's folder in a checkout, or DARKROOM_SOURCE.
here=$(cd "$(dirname "$0")" 2>/dev/null && pwd || echo .)
source_dir=${DARKROOM_SOURCE:-$here}
[ -f "$source_dir/pyproject.toml" ] || fail "no Darkroom source in $source_dir. Run this script from a Darkroom checkout, or set DARKROOM_SOURCE."

# 1. uv: use the one on PATH, else install it for this user.
if ! command -v uv >/dev/null 2>&1; then
  say "Installing uv (the Python package manager Darkroom builds app environments with)..."
  if command -v python3 >/dev/null 2>&1 && python3 -m pip install --user --quiet uv 2>/dev/null; then
    :
  elif command -v curl >/dev/null 2>&1; then
    curl -LsSf https://astral.sh/uv/install.sh | sh || fail "could not install uv. Install it by hand (https://docs.astral.sh/uv/) and run this again."
  else
    fail "could not install uv: neither pip nor curl works. Install uv by hand (https://docs.astral.sh/uv/) and run this again."
  fi
  PATH="$HOME/.local/bin:$HOME/.cargo/bin:$PATH"
  export PATH
  command -v uv >/dev/null 2>&1 || fail "uv was installed but is not on PATH. Open a new terminal and run this again."
fi

# 2. Respect the user's package index settings: uv reads its own (UV_INDEX_URL, uv.toml);
#    pip's are carried over when uv has none of its own.
if [ -z "${UV_INDEX_URL:-}${UV_DEFAULT_INDEX:-}" ] && command -v python3 >/dev/null 2>&1; then
  pip_index=$(python3 -m pip config get global.index-url 2>/dev/null || true)
  [ -n "${PIP_INDEX_URL:-}" ] && pip_index=$PIP_INDEX_URL
  [ -n "$pip_index" ] && UV_INDEX_URL=$pip_index && export UV_INDEX_URL
fi
if [ -z "${UV_EXTRA_INDEX_URL:-}" ] && command -v python3 >/dev/null 2>&1; then
  pip_extra=$(python3 -m pip config get global.extra-index-url 2>/dev/null || true)
  [ -n "${PIP_EXTRA_INDEX_URL:-}" ] && pip_extra=$PIP_EXTRA_INDEX_URL
  [ -n "$pip_extra" ] && UV_EXTRA_INDEX_URL=$pip_extra && export UV_EXTRA_INDEX_URL
fi
if [ -z "${UV_FIND_LINKS:-}" ] && command -v python3 >/dev/null 2>&1; then
  pip_links=$(python3 -m pip config get global.find-links 2>/dev/null || true)
  [ -n "${PIP_FIND_LINKS:-}" ] && pip_links=$PIP_FIND_LINKS
  [ -n "$pip_links" ] && UV_FIND_LINKS=$pip_links && export UV_FIND_LINKS
fi

# 3. Darkroom itself, in its own environment, with `darkroom` on PATH.
say "Installing Darkroom..."
uv tool install --force --reinstall "$source_dir" || fail "installing Darkroom failed (see the lines above). Check your network or package index settings and run this again."
uv tool update-shell >/dev/null 2>&1 || true
bin_dir=$(uv tool dir --bin 2>/dev/null || echo "$HOME/.local/bin")
PATH="$bin_dir:$PATH"
export PATH
say "Darkroom is installed: $(command -v darkroom)"

if [ "$run_after" = 1 ] && [ -t 0 ] && [ -t 1 ]; then
  exec darkroom
fi
say "Run 'darkroom' to open it (open a new terminal first if the command is not found)."
