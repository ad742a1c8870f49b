#!/bin/bash
# The device check (docs/results.md, "On a GPU"): the CUDA path end to end on a tiny
# survey, bf16 agreement on CUDA, and the scoring benchmark. Run from the repository root
# on a machine with a GPU. Inputs: .gpu/ holds a survey made here with
#   vo-al synth .gpu --lamost 3000 --ondrejov 600 --pool   (the seed of the 2026-11-30 run was not recorded)
# and .whl/ the wheels of astropy and pyerfa that the device image lacks (may be empty).
ls .whl/*.whl >/dev/null 2>&1 && { python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1; }
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader; nproc
python3 -c "import torch, astropy, h5py, scipy; print('torch', torch.__version__, torch.cuda.is_available(), 'astropy', astropy.__version__)"
S=/tmp/gs; rm -rf $S
vo() { python3 -c "from vo_al.cli import main; import sys; sys.exit(main(sys.argv[1:]))" "$@"; }
( set -x
  vo init $S --train .gpu/train.h5 --pool .gpu/pool.h5 --query-size 20
  time timeout 130 python3 -c "from vo_al.cli import main; import sys; sys.exit(main(sys.argv[1:]))" simulate $S --truth .gpu/truth.csv --iterations 3 --max-epochs 20 --patience 4 --strategy bald --warm-start --no-baseline
) 2>&1 | grep -v "it/s]\|s/it]" | tee ${OUT:-/tmp}/iterate-cuda.txt
timeout 70 python3 benchmarks/bf16_agreement.py --device cuda --checkpoint $S/iterations/001/model.pt --pool .gpu/pool.h5 2>&1 | tee ${OUT:-/tmp}/bf16-cuda.txt
timeout 240 python3 benchmarks/scoring.py --device cuda --batch 16384 --rows 1000000 --sizes 1000000 4000000 2>&1 | tee ${OUT:-/tmp}/scoring-cuda.txt
