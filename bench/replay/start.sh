#!/bin/bash
# Start (or resume) the recording in the background, niced, from the repository root:
#   bash bench/replay/start.sh
# First run: time config 0 alone (the CPU-hour estimate), then the whole design. Later runs resume.
set -eu
cd "$(dirname "$0")/../.."
PY=${PYTHON:-.venv/bin/python}
export PYTHONPATH=$PWD/src OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
nohup nice -n 19 bash -c "$PY bench/replay/record.py --resume --only-configs 1 && $PY bench/replay/record.py --resume" >> bench/replay/record.log 2>&1 &
echo $! > bench/replay/record.pid
echo "recorder pid $(cat bench/replay/record.pid); log bench/replay/record.log; journal bench/replay/data/journal.jsonl"
