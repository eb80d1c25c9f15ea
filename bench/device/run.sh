#!/bin/bash
# The GPU check of jfhpo's TRL path, as one prepared script for a lent GPU machine (no network;
# its image has torch, no TRL). From the repository root on that machine:
#
#   bash bench/device/run.sh            (OUT=folder for the logs; default /tmp/device-out)
#
# Needs .whl/ carried from the development machine: the wheels the image lacks (transformers,
# trl, datasets, pydantic, ...; the list and the download command are in bench/device/README.md).
#
# 1. the trl example project and study (`jfhpo init --workload trl`) run on the GPU (bf16), then
#    `jfhpo status` and `jfhpo export --format trl`; nvidia-smi logs the processes on the GPU;
# 2. the trl backend's tests and the evaluation-RNG test with the GPU visible (JFHPO_SLOW=1);
# 3. bench/device/resume_check.py: two uninterrupted segments and one stopped and resumed, compared
#    bit for bit.
set -u
OUT=${OUT:-/tmp/device-out}
mkdir -p "$OUT"
ROOT=$PWD
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=$ROOT/src:/tmp/site PYTHONUNBUFFERED=1
nvidia-smi -L
python3 -c "import torch, transformers, trl; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'transformers', transformers.__version__, 'trl', trl.__version__)"
nvidia-smi --query-compute-apps=pid,process_name,used_memory --format=csv,noheader -l 2 \
    > "$OUT/gpu-apps.log" 2>&1 &
SMI=$!
(
    set -x
    mkdir -p /tmp/trlx && cd /tmp/trlx || exit 1
    python3 -m jfhpo.examples.trl_project . && python3 -m jfhpo init --workload trl trl.yaml || exit 1
    sed -i 's/budget: {seconds: 600}/budget: {seconds: 150}/' trl.yaml
    timeout 200 python3 -m jfhpo run trl.yaml --out study; echo "run exit $?"
    python3 -m jfhpo status study; echo "status exit $?"
    python3 -m jfhpo export study --format trl --out best.yaml; echo "export exit $?"; cat best.yaml
    cd "$ROOT" && JFHPO_SLOW=1 timeout 170 python3 -m pytest -q -p no:cacheprovider \
        tests/backends/test_rng.py tests/backends/test_trl.py tests/backends/test_trl_study.py
    echo "pytest exit $?"
) > "$OUT/gpu-check.log" 2>&1
kill $SMI 2>/dev/null
grep -E "exit|passed|failed" "$OUT/gpu-check.log"
echo "processes seen on the GPU: $(cut -d, -f1 "$OUT/gpu-apps.log" | sort -u | wc -l)"
timeout 150 python3 bench/device/resume_check.py 10 2>&1 | grep -v Warning
