#!/usr/bin/env bash
# One short GPU check of gzsl's speed targets (benchmarks/gpu_check.py), one JSON out.
#
#   bash benchmarks/gpu_check.sh                  # full check, CUDA if present (< 8 min)
#   bash benchmarks/gpu_check.sh --tiny [X.json]  # toy sizes, any device, seconds
#   bash benchmarks/gpu_check.sh --learn          # instead: do the paper presets learn?
#                                                 # (paper_presets_learn.py on CUDA, < 9 min)
#
# Output: $OUT/gpu_check.json when OUT is set, else the .json path given, else
# benchmarks/gpu_check.json. Python: $GZSL_PYTHON if set, else the project's .venv if it
# imports torch and gzsl (and sees CUDA, when the system python3 does), else python3 with
# torch, on the source tree (PYTHONPATH=src) if gzsl is not installed there, else
# `make install` (needs the package index). Runs from any folder.
set -u -o pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1
say() { printf '[gpu_check] %s\n' "$*" >&2; }

args=() json="" learn="" tiny=""
for arg in "$@"; do
    case "$arg" in
        *.json) json=$arg ;;
        --learn) learn=1 ;;
        --tiny) tiny=1; args+=("$arg") ;;
        *) args+=("$arg") ;;
    esac
done
name=gpu_check
[ -n "$learn" ] && name=paper_presets_learn
if [ -n "${OUT:-}" ]; then
    json="$OUT/$name.json"
    say "OUT is set: writing $json"
elif [ -z "$json" ]; then
    json=benchmarks/$name.json
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

runner=()
start=$(date +%s)
if [ -n "$learn" ]; then
    # The literal AMAZ paper preset beside our recipe and VAE-cFlow's paper preset, full
    # size; the JSON is rewritten after each preset, and every checkpoint prints a line.
    limit=520
    command -v timeout >/dev/null && runner=(timeout "$limit")
    sizes=(--iterations 300 --every 25 --scale 0.25 --n-per-class 100)
    [ -n "$tiny" ] && sizes=(--iterations 4 --every 2 --scale 0.03 --feature-dim 64 --n-per-class 20)
    say "running benchmarks/paper_presets_learn.py ${sizes[*]} (hard limit ${limit} s)"
    PYTHONUNBUFFERED=1 "${runner[@]}" "$py" benchmarks/paper_presets_learn.py --device auto \
        --presets amaz/awa2 amaz/awa2-ours vaecflow/awa2 "${sizes[@]}" --out "$json"
    status=$?
else
    limit=440  # the full check's parts stop by 400 s after its start; this is the hard stop
    command -v timeout >/dev/null && runner=(timeout "$limit")
    say "running benchmarks/gpu_check.py ${args[*]:-} (hard limit ${limit} s)"
    PYTHONUNBUFFERED=1 "${runner[@]}" "$py" benchmarks/gpu_check.py --out "$json" "${args[@]}"
    status=$?
fi
say "finished in $(( $(date +%s) - start )) s with status $status; JSON: $json"
[ -f "$json" ] || { say "no JSON was written"; exit 1; }
exit $status
