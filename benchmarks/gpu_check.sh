#!/usr/bin/env bash
# One short GPU check of gzsl's speed targets (benchmarks/gpu_check.py), one JSON out.
#
#   bash benchmarks/gpu_check.sh                  # full check, CUDA if present (< 8 min)
#   bash benchmarks/gpu_check.sh --tiny [X.json]  # toy sizes, any device, seconds
#
# Output: $OUT/gpu_check.json when OUT is set, else the .json path given, else
# benchmarks/gpu_check.json. Python: $GZSL_PYTHON if set, else the project's .venv if it
# imports torch and gzsl (and sees CUDA, when the system python3 does), else python3 with
# torch, on the source tree (PYTHONPATH=src) if gzsl is not installed there, else
# `make install` (needs the package index). Runs from any folder.
set -u -o pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1
say() { printf '[gpu_check] %s\n' "$*" >&2; }

args=() json=""
for arg in "$@"; do
    case "$arg" in
        *.json) json=$arg ;;
        *) args+=("$arg") ;;
    esac
done
if [ -n "${OUT:-}" ]; then
    json="$OUT/gpu_check.json"
    say "OUT is set: writing $json"
elif [ -z "$json" ]; then
    json=benchmarks/gpu_check.json
fi

# One import of torch per candidate (each takes seconds): "cuda"/"cpu", or nothing.
venv_has() { "$1" -c 'import torch, gzsl; print("cuda" if torch.cuda.is_available() else "cpu")' \
    2>/dev/null; }
system=$(command -v python3 || true)
system_cuda() { [ -n "$system" ] && "$system" -c 'import torch; print(torch.cuda.is_available())' \
    2>/dev/null; }

if [ -n "${GZSL_PYTHON:-}" ]; then
    py=$GZSL_PYTHON
    say "using GZSL_PYTHON=$py"
else
    venv=""
    [ -x .venv/bin/python ] && venv=$(venv_has .venv/bin/python)
    other=""
    [ "$venv" = cuda ] || other=$(system_cuda)
    if [ -n "$venv" ] && { [ "$venv" = cuda ] || [ "$other" != True ]; }; then
        py=.venv/bin/python
        say "using the project's virtual environment .venv (torch device: $venv)"
    elif [ -n "$other" ]; then
        py=$system
        [ -x .venv/bin/python ] && say ".venv is unusable here (no gzsl/torch in it, or no CUDA where $py has it)"
        if ! "$py" -c 'import gzsl' >/dev/null 2>&1; then
            export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
            say "gzsl is not installed for $py: using the source tree (PYTHONPATH=src)"
        fi
        say "using $py (torch sees CUDA: $other)"
    else
        say "no Python with torch found: running make install (creates .venv; needs the package index)"
        make install || { say "make install failed: install torch and gzsl, or set GZSL_PYTHON"; exit 2; }
        py=.venv/bin/python
    fi
fi

limit=440  # the full check's parts stop by 400 s after its start; this is the hard stop
say "running benchmarks/gpu_check.py ${args[*]:-} (hard limit ${limit} s)"
start=$(date +%s)
runner=()
command -v timeout >/dev/null && runner=(timeout "$limit")
PYTHONUNBUFFERED=1 "${runner[@]}" "$py" benchmarks/gpu_check.py --out "$json" "${args[@]}"
status=$?
say "finished in $(( $(date +%s) - start )) s with status $status; JSON: $json"
[ -f "$json" ] || { say "no JSON was written"; exit 1; }
exit $status
