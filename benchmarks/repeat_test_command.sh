#!/usr/bin/env bash
# Run the README's test command N times in a row (default 5) in one fresh virtual environment,
# as CI does (CPI_DATA_DIR at ../shared/data when it exists, hub offline), and print per run:
# exit status, wall seconds, pytest's summary line, and any process left behind that still
# runs from the environment. Issue 10's bar: 5 passes in a row on 2 cores, no hang.
#
#     bash benchmarks/repeat_test_command.sh 5 2>&1 | tee repeat.log
#
# Each run has a 40-minute limit (a hang shows as exit 124). Logs: $WORK/run-<i>.log, where
# WORK is printed first (kept after the script ends: delete it by hand).
set -uo pipefail
n="${1:-5}"
cd "$(dirname "$0")/.."

# The README's test command, verbatim, without its first two steps (venv creation and
# activation), which happen here once.
readme_cmd="$(grep -m1 -E "^python -m venv .*'\.\[dev\]'.* python -m pytest$" README.md)"
cmd="${readme_cmd#*activate && }"
[ -n "$cmd" ] || { echo "no test command found in README.md" >&2; exit 2; }

work="$(mktemp -d)"
echo "work folder: $work"
echo "command: $cmd"
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export PIP_DISABLE_PIP_VERSION_CHECK=1
if [ -z "${CPI_DATA_DIR:-}" ] && [ -d ../shared/data ]; then
    CPI_DATA_DIR="$(cd ../shared/data && pwd)"
    export CPI_DATA_DIR
fi
python3 -m venv "$work/venv"
# shellcheck disable=SC1091
. "$work/venv/bin/activate"
python -m pip install -q --upgrade pip

passes=0
for i in $(seq 1 "$n"); do
    start=$(date +%s)
    timeout --kill-after=30 2400 bash -c "$cmd" > "$work/run-$i.log" 2>&1
    rc=$?
    wall=$(( $(date +%s) - start ))
    summary="$(grep -E '^=+ .*(passed|failed|error).* in ' "$work/run-$i.log" | tail -1)"
    left="$(pgrep -f "$work/venv" | grep -v "^$$\$" | tr '\n' ' ')"
    echo "run $i: exit $rc, ${wall} s, ${summary:-no pytest summary}, left behind: ${left:-none}"
    [ "$rc" -eq 0 ] && passes=$((passes + 1))
done
echo "$passes of $n runs passed"
[ "$passes" -eq "$n" ]
