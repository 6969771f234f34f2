# Darkroom bootstrap for Windows: uv if missing, then Darkroom as a uv tool, then the
# full-screen interface. Safe to run again: it upgrades in place.
#   powershell -ExecutionPolicy Bypass -File install.ps1 [-NoRun]
param([switch]$NoRun)
$ErrorActionPreference = "Stop"

function Fail($msg) { Write-Host "darkroom install: $msg" -ForegroundColor Red; exit 1 }

$SourceDir = if ($env:DARKROOM_SOURCE) { $env:DARKROOM_SOURCE } else { $PSScriptRoot }
if (-not (Test-Path (Join-Path $SourceDir "pyproject.toml"))) {
    Fail "no Darkroom source in $SourceDir. Run this script from a Darkroom checkout, or set DARKROOM_SOURCE."
}

# 1. uv: use the one on PATH, else install it for this user.
if (-not (Get-Command uv -ErrorAction SilentlyContinue)) {
    Write-Host "Installing uv (the Python package manager Darkroom builds app environments with)..."
    $py = Get-Command py -ErrorAction SilentlyContinue
    if ($py) { & py -m pip install --user --quiet uv 2>$null }
    if (-not (Get-Command uv -ErrorAction SilentlyContinue)) {
        try { Invoke-RestMethod https://astral.sh/uv/install.ps1 | Invoke-Expression }
        catch { Fail "could not install uv. Install it by hand (https://docs.astral.sh/uv/) and run this again." }
    }
    $env:Path = "$env:USERPROFILE\.local\bin;$env:Path"
    if (-not (Get-Command uv -ErrorAction SilentlyContinue)) { Fail "uv was installed but is not on PATH. Open a new terminal and run this again." }
}

# 2. Respect the user's package index settings: uv reads its own; pip's are carried over.
$pyexe = Get-Command python -ErrorAction SilentlyContinue
if ($pyexe) {
    if (-not $env:UV_INDEX_URL) {
        $v = if ($env:PIP_INDEX_URL) { $env:PIP_INDEX_URL } else { & python -m pip config get global.index-url 2>$null }
        if ($v) { $env:UV_INDEX_URL = $v }
    }
    if (-not $env:UV_EXTRA_INDEX_URL) {
        $v = if ($env:PIP_EXTRA_INDEX_URL) { $env:PIP_EXTRA_INDEX_URL } else { & python -m pip config get global.extra-index-url 2>$null }
        if ($v) { $env:UV_EXTRA_INDEX_URL = $v }
    }
    if (-not $env:UV_FIND_LINKS) {
        $v = if ($env:PIP_FIND_LINKS) { $env:PIP_FIND_LINKS } else { & python -m pip config get global.find-links 2>$null }
        if ($v) { $env:UV_FIND_LINKS = $v }
    }
}

# 3. Darkroom itself, with `darkroom` on PATH.
Write-Host "Installing Darkroom..."
& uv tool install --force --reinstall $SourceDir
if ($LASTEXITCODE -ne 0) { Fail "installing Darkroom failed (see the lines above). Check your network or package index settings and run this again." }
& uv tool update-shell 2>$null | Out-Null
$bin = (& uv tool dir --bin)
$env:Path = "$bin;$env:Path"
Write-Host "Darkroom is installed."
if (-not $NoRun) { & darkroom } else { Write-Host "Run 'darkroom' to open it (open a new terminal first if the command is not found)." }
