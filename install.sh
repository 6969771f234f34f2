#!/bin/sh
# Darkroom bootstrap for Linux and macOS: uv if missing, then Darkroom as a uv tool, then
# the full-screen interface. Safe to run again: it upgrades in place.
#   ./install.sh                 install and open Darkroom
#   ./install.sh --no-run        install only
#   ./install.sh --add-to-path   also put `darkroom` on PATH in your shell's startup file
#                                without asking (--no-add-to-path: never; the default asks
#                                on a terminal and changes nothing without one)
set -eu

say() { printf '%s\n' "$*"; }
fail() { say "darkroom install: $*" >&2; exit 1; }

run_after=1
add_to_path=ask
for arg in "$@"; do
  case "$arg" in
    --no-run) run_after=0 ;;
    --add-to-path) add_to_path=yes ;;
    --no-add-to-path) add_to_path=no ;;
    *) fail "unknown option '$arg'. Use --no-run, --add-to-path or --no-add-to-path." ;;
  esac
done
user_path=$PATH  # the PATH of the terminal that ran this script, before anything is added
on_path() { case ":$user_path:" in *":$1:"*) return 0 ;; esac; return 1; }

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
bin_dir=$(uv tool dir --bin 2>/dev/null || echo "$HOME/.local/bin")
PATH="$bin_dir:$PATH"
export PATH
say "Darkroom is installed: $bin_dir/darkroom"

# 4. `darkroom` in this terminal: a script cannot change the PATH of the shell that ran it, so
#    either the command lands in a folder that shell already searches, or the one line that
#    makes it work is printed (and, if you agree, your shell's startup file learns it too).
runnable=0
if on_path "$bin_dir"; then
  runnable=1
else
  old_ifs=$IFS
  IFS=:
  set -f  # PATH entries are names, not patterns
  for dir in $user_path; do
    case "$dir" in "$HOME"/*) ;; *) continue ;; esac
    if [ -d "$dir" ] && [ -w "$dir" ] && { [ ! -e "$dir/darkroom" ] || [ -L "$dir/darkroom" ]; }; then
      ln -sf "$bin_dir/darkroom" "$dir/darkroom" && runnable=1 && say "Linked $dir/darkroom (a folder your terminal already searches)." && break
    fi
  done
  set +f
  IFS=$old_ifs
fi
if [ "$runnable" = 0 ]; then
  if [ "$add_to_path" = ask ]; then
    add_to_path=no
    if [ -t 0 ] && [ -t 1 ]; then
      printf 'Add %s to your PATH in your shell'"'"'s startup file, so new terminals find darkroom? [Y/n] ' "$bin_dir"
      answer=
      read -r answer || answer=n
      case "$answer" in ""|y|Y|yes|Yes) add_to_path=yes ;; esac
    fi
  fi
  if [ "$add_to_path" = yes ]; then
    uv_bin=$(command -v uv)  # by its full path: uv may live in the very folder being added
    if PATH=$user_path "$uv_bin" tool update-shell >/dev/null 2>&1; then
      say "New terminals will find darkroom (your shell's startup file now adds $bin_dir to PATH)."
    else
      say "Could not change your shell's startup file; add $bin_dir to PATH there yourself."
    fi
  else
    say "New terminals: run 'uv tool update-shell' once so they find darkroom."
  fi
  say "To use darkroom in this terminal now, run:"
  say "  export PATH=\"$bin_dir:\$PATH\""
fi

if [ "$run_after" = 1 ] && [ -t 0 ] && [ -t 1 ]; then
  exec darkroom
fi
if [ "$runnable" = 1 ]; then
  say "Run 'darkroom' to open it."
else
  say "Then run 'darkroom' to open it."
fi
