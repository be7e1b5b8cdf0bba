#!/usr/bin/env bash
# Create (once) the virtual environment a peer tool runs in, under benchmarks/_scratch/venvs/<peer>.
# Usage: benchmarks/peers/make_env.sh scmingle|epipack|cellcano
# Every peer gets its own environment so its pinned dependencies never touch seqAlignATAC's.
# A file <venv>/.ready marks a finished install; delete the venv to rebuild it.
set -euo pipefail
peer="$1"
here="$(cd "$(dirname "$0")/.." && pwd)"
venv="${SEQALIGNATAC_BENCH_SCRATCH:-$here/_scratch}/venvs/$peer"
[ -f "$venv/.ready" ] && { echo "$venv"; exit 0; }
pyfor() {  # an interpreter of the given minor version: PATH first, then pyenv
  local v="$1"
  command -v "python$v" >/dev/null 2>&1 && "python$v" -c 'pass' 2>/dev/null && { command -v "python$v"; return; }
  for p in "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"$v".*/bin/python"$v"; do [ -x "$p" ] && { echo "$p"; return; }; done
  echo "no Python $v interpreter found (install it with pyenv or apt)" >&2; return 1
}
rm -rf "$venv"; mkdir -p "$(dirname "$venv")"
case "$peer" in
  scmingle)
    # scMINGLE 1.1.0 needs Python >= 3.10.10, torch >= 2.0.1, torch-geometric >= 2.5.2 (wheel METADATA).
    "$(pyfor 3.11)" -m venv "$venv"
    "$venv/bin/pip" install -q torch==2.13.0          # CPU build first: a bare torch pulls GBs of CUDA wheels
    "$venv/bin/pip" install -q scMINGLE==1.1.0 psutil
    ;;
  epipack)
    # epipackpy 1.0.2: Python >=3.8,<3.12, torch>=2; imports polars without declaring it.
    "$(pyfor 3.11)" -m venv "$venv"
    "$venv/bin/pip" install -q torch==2.13.0
    # Its pin pandas<2.1.2 is built against numpy 1.x, and its dataload module imports scanpy
    # (undeclared): pin numpy<2 and add a scanpy/anndata of the same era.
    "$venv/bin/pip" install -q epipackpy==1.0.2 polars "numpy<2" "scanpy>=1.9,<1.11" "anndata>=0.9,<0.11" psutil
    ;;
  cellcano)
    # Cellcano pins tensorflow==2.7.1, numpy==1.19.2, anndata==0.7.4, scanpy==1.8.2, h5py==2.10.0 (sdist
    # setup.py) and recommends Python 3.8; TF 2.7.1 has wheels for Python 3.7-3.9 only.
    "$(pyfor 3.8)" -m venv "$venv"
    "$venv/bin/pip" install -q --upgrade "pip<24" wheel
    "$venv/bin/pip" install -q tensorflow==2.7.1 "numpy==1.19.2" "anndata==0.7.4" "scanpy==1.8.2" "h5py==2.10.0" \
        "protobuf<3.20" "pandas<1.4" "scipy<1.8" "scikit-learn<1.1" "matplotlib<3.6" "numba<0.56" "llvmlite<0.39" psutil
    "$venv/bin/pip" install -q --no-deps Cellcano==1.0.4
    ;;
  *) echo "unknown peer '$peer' (scmingle, epipack, cellcano)" >&2; exit 2 ;;
esac
touch "$venv/.ready"
echo "$venv"
