# Darkroom bootstrap for Windows: uv if missing, then Darkroom as a uv tool, then the
# full-screen interface. Safe to run again: it upgrades in place.
#   powershell -ExecutionPolicy Bypass -File install.ps1 [-NoRun] [-AddToPath | -NoAddToPath]
# -AddToPath puts `darkroom` on your user PATH without asking; -NoAddToPath never does; by
# default it asks when there is someone to ask, and changes nothing when input is redirected.
param([switch]$NoRun, [switch]$AddToPath, [switch]$NoAddToPath)
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
$bin = (& uv tool dir --bin)
$UserPath = "$([Environment]::GetEnvironmentVariable('Path', 'User'));$([Environment]::GetEnvironmentVariable('Path', 'Machine'))"
$OnPath = ($UserPath -split ';' | Where-Object { $_ -and ($_.TrimEnd('\') -ieq $bin.TrimEnd('\')) }).Count -gt 0
Write-Host "Darkroom is installed: $bin\darkroom.exe"

# 4. `darkroom` in this terminal: a script run with -File cannot change the PATH of the
#    terminal that ran it, so the one line that does is printed; new terminals find it once
#    the user PATH has the folder (uv tool update-shell), which is asked first.
if (-not $OnPath) {
    $add = $false
    if ($AddToPath) { $add = $true }
    elseif (-not $NoAddToPath -and [Environment]::UserInteractive -and -not [Console]::IsInputRedirected) {
        $answer = Read-Host "Add $bin to your user PATH, so new terminals find darkroom? [Y/n]"
        $add = ($answer -eq "" -or $answer -match '^(y|yes)$')
    }
    if ($add) {
        & uv tool update-shell 2>$null | Out-Null
        if ($LASTEXITCODE -eq 0) { Write-Host "New terminals will find darkroom (your user PATH now has $bin)." }
        else { Write-Host "Could not change your user PATH; add $bin to it yourself." }
    } else {
        Write-Host "New terminals: run 'uv tool update-shell' once so they find darkroom."
    }
    Write-Host "To use darkroom in this terminal now, run:"
    Write-Host "  `$env:Path = `"$bin;`$env:Path`""
}
$env:Path = "$bin;$env:Path"  # after update-shell, which would otherwise think it is on PATH already
if (-not $NoRun -and [Environment]::UserInteractive -and -not [Console]::IsInputRedirected) { & darkroom }
else { Write-Host "Run 'darkroom' to open it." }
