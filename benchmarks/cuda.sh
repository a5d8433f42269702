#!/usr/bin/env bash
# Every CUDA measurement the README quotes, in one go, on a machine with an NVIDIA GPU:
#
#     bash benchmarks/cuda.sh [OUT_DIR]        # default OUT_DIR: benchmarks/results
#
# Each part runs in its own process under a time limit, so that one that fails or runs long
# loses nothing of the others; each writes <date>-cuda-<part>.md (the report, with the command
# in its first lines) to OUT_DIR, and <date>-cuda-<part>.log (its output) only if it failed. Needs the peer for the
# network rows: pip install -e ".[bench]". PYTHON picks the interpreter (default: .venv's, else python3);
# BENCH_ARGS are added to every benchmark run and PYTEST_ARGS to the tests (e.g. "-n 8").
set -u
out=$(realpath -m "${1:-benchmarks/results}")  # before moving to the project root
cd "$(dirname "$0")/.."
# The project's virtual environment (make setup) if there is one, else python3.
default_py=python3
[ -x .venv/bin/python ] && default_py=.venv/bin/python
py=${PYTHON:-$default_py}
tag="$(date +%F)-cuda"
mkdir -p "$out"
export PYTHONUNBUFFERED=1

nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv | tee "$out/$tag-gpu.txt"
"$py" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'cudnn', torch.backends.cudnn.version())" \
    | tee -a "$out/$tag-gpu.txt"

part() {  # part NAME SECONDS ARGS...: one benchmark run under a time limit
    local name=$1 limit=$2
    shift 2
    local start=$SECONDS
    timeout "$limit" "$py" -m petlib.research.bench --device "${DEVICE:-cuda}" "$@" ${BENCH_ARGS:-} --out "$out/$tag-$name.md" >"$out/$tag-$name.log" 2>&1
    local status=$?
    echo "== $name: exit $status after $((SECONDS - start)) s (limit $limit s)"
    # The report holds everything a successful run printed; keep the log only when it failed.
    if [ $status -eq 0 ]; then rm -f "$out/$tag-$name.log"; else tail -n 20 "$out/$tag-$name.log"; fi
}

# Both networks at 128 and 256 px at the default training batch (16) against the peers,
# then each speed option flipped alone.
part networks 300 --sections networks options --sizes 128 256 --batch_size 16 --repeats 5 --seconds 0.5
# A batch that keeps the GPU busier: does the ratio hold when launches matter less?
part networks-b64 150 --models resnet34_unet --sections networks --sizes 128 256 --batch_size 64 \
    --repeats 5 --seconds 0.5 --no-memory
# The loader on this machine's CPU (the whole sample and a synthetic full-size set of 7,390 JPEGs),
# and real epochs of fit on the shipped sample.
part loader-epoch 300 --sections loader epoch --repeats 5
# The unit tests with a GPU present (they pick CUDA wherever a user's run would).
start=$SECONDS
timeout 400 "$py" -m pytest tests -q -p no:randomly ${PYTEST_ARGS:-} >"$out/$tag-pytest.log" 2>&1
echo "== pytest: exit $? after $((SECONDS - start)) s"
tail -n 3 "$out/$tag-pytest.log"
# torch.compile last: each mode takes a minute or so to compile, at each size.
part compile-256 200 --sections compile --sizes 256 --batch_size 16 --repeats 3 --seconds 0.5
part compile-128 200 --sections compile --sizes 128 --batch_size 16 --repeats 3 --seconds 0.5

for f in "$out/$tag"-*.md; do
    echo
    echo "#### $f"
    grep -E '^\|' "$f"
done
