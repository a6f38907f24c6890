#!/usr/bin/env bash
# Install CellProfiler 4.2.8.1 headless into its own Python 3.9 virtual environment.
#
# Usage: scripts/install_cellprofiler.sh [VENV_DIR]
#   VENV_DIR defaults to <repo>/.venv-cellprofiler (git-ignored).
#
# The finished interpreter is VENV_DIR/bin/python; point the project at it with
#   export CELLPROFILER_PYTHON=VENV_DIR/bin/python
#
# CellProfiler 4.2 needs Python 3.9 and numpy < 1.24; python-javabridge has no wheels and
# builds against the installed numpy and a JDK, so the build tools are pinned first and the
# Java-bound packages are built without isolation. mysqlclient and wxPython (no wheels, not
# needed headless) are left out. Idempotent: a marker file records a finished install.
#
# Environment: PYTHON39 (a Python 3.9 interpreter), JAVA_HOME (a JDK; found if unset).
set -euo pipefail

CELLPROFILER_VERSION="4.2.8.1"
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv_dir="${1:-$repo_root/.venv-cellprofiler}"
marker="$venv_dir/.cellprofiler-$CELLPROFILER_VERSION-installed"

say() { echo "[install_cellprofiler] $*"; }
die() { echo "[install_cellprofiler] ERROR: $*" >&2; exit 1; }

if [[ -f "$marker" ]]; then
    say "CellProfiler $CELLPROFILER_VERSION already installed in $venv_dir (marker $marker)"
    exit 0
fi

# --- a Python 3.9 interpreter -------------------------------------------------------------
find_python39() {
    local candidate
    for candidate in "${PYTHON39:-}" python3.9; do
        [[ -n "$candidate" ]] || continue
        if "$candidate" -c 'import sys; assert sys.version_info[:2] == (3, 9)' >/dev/null 2>&1; then
            command -v "$candidate"
            return 0
        fi
    done
    # pyenv installs that the shim does not expose (no global version selected)
    local pyenv_root="${PYENV_ROOT:-$HOME/.pyenv}"
    for candidate in "$pyenv_root"/versions/3.9*/bin/python3.9; do
        if [[ -x "$candidate" ]]; then
            echo "$candidate"
            return 0
        fi
    done
    return 1
}
python39="$(find_python39)" || die "no Python 3.9 found (set PYTHON39, or install it, e.g. pyenv install 3.9)"
say "Python 3.9: $python39"

# --- a JDK (javabridge compiles against jni.h and links libjvm) ---------------------------
find_java_home() {
    if [[ -n "${JAVA_HOME:-}" && -f "$JAVA_HOME/include/jni.h" ]]; then
        echo "$JAVA_HOME"
        return 0
    fi
    local javac_path candidate
    if javac_path="$(command -v javac)"; then
        candidate="$(dirname "$(dirname "$(readlink -f "$javac_path")")")"
        if [[ -f "$candidate/include/jni.h" ]]; then
            echo "$candidate"
            return 0
        fi
    fi
    for candidate in /usr/lib/jvm/java-17-openjdk-* /usr/lib/jvm/*; do
        if [[ -f "$candidate/include/jni.h" ]]; then
            echo "$candidate"
            return 0
        fi
    done
    return 1
}
JAVA_HOME="$(find_java_home)" || die "no JDK found (set JAVA_HOME; e.g. apt-get install openjdk-17-jdk-headless)"
export JAVA_HOME
say "JAVA_HOME: $JAVA_HOME"

# --- the virtual environment --------------------------------------------------------------
say "creating virtual environment $venv_dir"
"$python39" -m venv "$venv_dir"
venv_python="$venv_dir/bin/python"
# wxPython (GUI) and mysqlclient are left out on purpose; pip's resolver then prints an
# ERROR block about them after every install. Drop exactly those lines, say it once.
expected_conflicts() {
    awk '
        /^ERROR: pip.s dependency resolver does not currently take into account/ { next }
        /^cellprofiler [0-9.]+ requires (wxPython|mysqlclient)/ { dropped = 1; next }
        { print }
        END { if (dropped) print "[install_cellprofiler] note: wxPython and mysqlclient are left out on purpose (headless)" }
    '
}
pip_install() {
    say "pip install $*"
    "$venv_python" -m pip install --disable-pip-version-check --no-input "$@" 2>&1 \
        | expected_conflicts
    return "${PIPESTATUS[0]}"
}

# Keep numpy at the version the Java-bound builds were made against, whatever a later
# requirement asks for; pin CellProfiler's own numeric versions from the first resolution.
constraints="$venv_dir/cellprofiler-constraints.txt"
cat >"$constraints" <<'EOF'
numpy==1.23.5
scipy==1.9.0
scikit-image==0.18.3
h5py~=3.7.0
EOF

pip_install "pip<24" "wheel"
pip_install -c "$constraints" "numpy==1.23.5" "cython<3" "setuptools<70"
pip_install -c "$constraints" --no-build-isolation \
    "python-javabridge<5,>=4.0.3" "cellprofiler-core==$CELLPROFILER_VERSION"
pip_install -c "$constraints" --no-deps "cellprofiler==$CELLPROFILER_VERSION"
# cellprofiler's own requirements, less mysqlclient and wxPython
pip_install -c "$constraints" --no-build-isolation \
    "boto3>=1.12.28" \
    "centrosome<1.3,>=1.2.3" \
    "docutils==0.15.2" \
    "h5py~=3.7.0" \
    "imageio>=2.5" \
    "inflect<7,>=2.1" \
    "Jinja2>=2.11.2" \
    "joblib>=0.13" \
    "mahotas>=1.4" \
    "matplotlib<4,>=3.1.3" \
    "Pillow>=7.1.0" \
    "prokaryote==2.4.4" \
    "python-bioformats<5,>=4.0.7" \
    "pyzmq~=22.3" \
    "sentry-sdk==0.18.0" \
    "requests>=2.22" \
    "scipy==1.9.0" \
    "scikit-image==0.18.3" \
    "scikit-learn<1,>=0.20" \
    "six" \
    "tifffile<2022.4.22" \
    "imagecodecs<2022.9"

# --- check --------------------------------------------------------------------------------
say "checking the installation"
"$venv_python" - <<'EOF'
import importlib.metadata

import cellprofiler_core.pipeline  # noqa: F401
import javabridge  # noqa: F401
import numpy

version = importlib.metadata.version("cellprofiler")
print(f"[install_cellprofiler] cellprofiler {version}, numpy {numpy.__version__}")
EOF
"$venv_python" -m cellprofiler --version >/dev/null 2>&1 \
    || say "note: 'python -m cellprofiler --version' returned non-zero (checked imports only)"

echo "JAVA_HOME=$JAVA_HOME" >"$marker"
say "done: CellProfiler $CELLPROFILER_VERSION in $venv_dir"
say "use it with: export CELLPROFILER_PYTHON=$venv_python"
