#!/bin/sh
# Issue 14's GPU figures in one go, on a machine with an NVIDIA GPU, from the
# project root once the environment exists (`make setup`): the driver that
# draws, posed renders per second, the end-to-end run with a worker per core,
# and the CPU side alone (what the GPU cannot speed up).
set -e
PY=${PY:-.venv/bin/python}
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv || true
$PY -c "from mmdrender.gl.context import describe; print('drawing with', describe())"
$PY bench/render.py
BENCH_WORKERS=${BENCH_WORKERS:-$(nproc)} BENCH_EXAMPLES=${BENCH_EXAMPLES:-1024} \
    $PY bench/dataset.py
$PY bench/cpu_side.py
