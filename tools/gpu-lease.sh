#!/usr/bin/env bash
# One call of a GPU lease (../shared/device/README.md), run from the project's root on the lent machine.
#   bash tools/gpu-lease.sh stage PART [last]         unpack a staged data part (the last one also rebuilds the data)
#   bash tools/gpu-lease.sh measure SECONDS     profile fp32 + the step-variant selection (train_speed --select), then
#                                               the plan
#   bash tools/gpu-lease.sh plan SECONDS        the plan (full profile) until SECONDS after this call started
#   bash tools/gpu-lease.sh select [SECONDS]     the step-variant selection alone (LEASE_PLAN's models; default 90 s)
#   bash tools/gpu-lease.sh checkpoints          unpack .device-data/checkpoints.tar.part* (carried in one call: the
#                                               runs an earlier lease's deadline cut; its README says where they are)
#   bash tools/gpu-lease.sh lanes SECONDS LANE...  one `bench run` process per LANE ("suite|members|variants[|seeds]",
#                                               comma lists; each lane's runs one after another), all at once on the GPU,
#                                               each recording the run its deadline cuts; --resume continues them
# LEASE_PLAN: a plan name or file (default paper, e.g. tools/lease-plans/<lease>.toml); LEASE_PARALLEL: runs at a time
# (submitit's local executor); LEASE_PROCESSES: plan processes on the GPU (default: the step selection's measure)
# SECONDS is this call's own limit: the plan's --max-minutes is set so that results are packed into $OUT before it.
# Everything is written under $LEASE_HOME (default ~/s), which lives as long as the machine stays warm.
set -uo pipefail
export PYTHONUNBUFFERED=1 TQDM_MININTERVAL=15
S=${LEASE_HOME:-$HOME/s}
OUT=${OUT:?no \$OUT}
export BENCH_DATA_ROOT=$S/datasets BENCH_WEIGHTS=$S/weights/vgg16-features-imagenet.pth
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
# the tree runs uninstalled there: bench.architectures and bench.datasets are the top-level folders of the same names
# (pyproject's package-dir), linked in where the package is not installed (links ignored by git)
python3 -c "import bench.datasets, bench.architectures" 2>/dev/null || \
    for d in architectures datasets; do [ -e "bench/$d" ] || ln -s "../$d" "bench/$d"; done
# the commit and file hashes of the tree sent (python -c "from bench.records import write_source_manifest as w; w()"
# here before the lease): records name that commit, whatever .git the machine's copy carries
if [ -f .source-manifest.json ]; then export BENCH_SOURCE_MANIFEST=$PWD/.source-manifest.json
else echo "warning: no .source-manifest.json carried: records take the commit from git, if any"; fi
PROFILE=${LEASE_PROFILE:-full}      # smoke: the rehearsal on the CPU
DEVICE=${LEASE_DEVICE:-cuda}
R=$S/results C=$S/checkpoints
t0=${LEASE_T0:-$(date +%s)}
mode=$1; arg=${2:-}
mkdir -p "$S/.staged" "$R" "$C"
bench() { python3 -m bench.cli "$@"; }   # bench/cli/__main__.py: the `bench` entry point

pack() {  # each results folder as a tar with the seal (split below 16 MiB), the checkpoint of a run cut short if it fits
    # back here: tar xf each into a folder, then `python -m bench.seal --import FOLDER results` (checked, then merged)
    local name part
    for d in "$R"/*/; do
        [ -d "$d" ] || continue
        name=$(basename "$d")
        tar cf "$S/$name.tar" -C "$R" "$name" $( [ -f "$R/records.seal.json" ] && echo records.seal.json )  # with the seals
        if [ "$(stat -c %s "$S/$name.tar")" -le $((15 * 1024 * 1024)) ]; then
            mv "$S/$name.tar" "$OUT/"
        else
            split -b 15M -d "$S/$name.tar" "$OUT/$name.tar.part" && rm "$S/$name.tar"
        fi
    done
    # checkpoints of runs cut short, in parts of 15 MiB when at most 3 parts (Table 1 models, DeepLab-LargeFOV)
    (cd "$C" && find . -name '*.pt' -size -40M | while read -r f; do      # each with its progress note
        echo "$f"; [ -f "${f%.pt}.json" ] && echo "${f%.pt}.json"; done | tar cf "$S/checkpoints.tar" -T -)
    local size; size=$(stat -c %s "$S/checkpoints.tar")
    if [ -z "$(tar tf "$S/checkpoints.tar")" ]; then :
    elif [ "$size" -le $((15 * 1024 * 1024)) ]; then cp "$S/checkpoints.tar" "$OUT/"
    elif [ "$size" -le $((45 * 1024 * 1024)) ]; then split -b 15M -d "$S/checkpoints.tar" "$OUT/checkpoints.tar.part"
    else echo "== checkpoints: $((size / 1048576)) MiB, too large to bring back"; fi
    ls -la "$OUT"
}

plan() {  # the plan until $1 seconds after this call started, leaving a minute to pack
    local left=$(( $1 - ($(date +%s) - t0) - 60 ))
    echo "== plan: $left s before the deadline"
    [ "$left" -gt 30 ] || return 0
    # LEASE_PARALLEL=N: the plan's runs as N jobs at a time on the one GPU (small Table 1 models leave it idle);
    # it needs submitit, which the lent machine's image lacked in lease 2: then the runs go one at a time
    if [ -n "${LEASE_PARALLEL:-}" ] && ! python3 -c "import submitit" 2>/dev/null; then
        echo "== no submitit here: LEASE_PARALLEL=$LEASE_PARALLEL ignored, one run at a time"; unset LEASE_PARALLEL
    fi
    # in one process, the run the deadline cuts is also recorded as it stands (stop reason "deadline", never counted
    # as converged): a checkpoint above 45 MiB (SegNet's is ~235 MB) cannot come back, so it would otherwise be lost
    local at_deadline=--record-at-deadline
    [ -n "${LEASE_PARALLEL:-}" ] && at_deadline=""
    # processes per GPU: as the newest step selection measured (two where two train 10 % more together), unless set
    local procs=${LEASE_PROCESSES:-$(python3 -c "import glob, json; p = sorted(glob.glob('$R/benchmarks/train_speed-select-*.json')); print(json.load(open(p[-1])).get('processes_per_gpu', 1) if p else 1)" 2>/dev/null || echo 1)}
    if [ "$procs" -gt 1 ] && [ -z "${LEASE_PARALLEL:-}" ]; then
        # the same plan in each process: a run one of them trains is locked (its run lock), so the other skips it
        # ("could not run") and takes the next; each records the run its deadline cuts
        echo "== plan in $procs processes on the one GPU (the selection's processes_per_gpu)"
        local pids=() i
        for i in $(seq "$procs"); do
            bench run --plan "${LEASE_PLAN:-paper}" --profile "$PROFILE" --device "$DEVICE" --results "$R" \
                --checkpoints "$C" --max-minutes "$(python3 -c "print($left / 60)")" $at_deadline \
                > "$OUT/log-plan-process$i.txt" 2>&1 &
            pids+=($!)
            sleep 20  # the first takes the first run before the second looks
        done
        for i in "${pids[@]}"; do wait "$i"; echo "== plan process exit status $?"; done
        return 0
    fi
    bench run --plan "${LEASE_PLAN:-paper}" --profile "$PROFILE" --device "$DEVICE" --results "$R" --checkpoints "$C" \
        --max-minutes "$(python3 -c "print($left / 60)")" $at_deadline \
        ${LEASE_PARALLEL:+--executor local --max-parallel $LEASE_PARALLEL --jobs $S/jobs}
    echo "== plan exit status $?"
}

lanes() {  # $1 seconds; then one lane per argument, each its own process, their logs in $OUT
    local left=$(( $1 - ($(date +%s) - t0) - 60 )) lane suite members variants seeds pids=()
    shift
    echo "== lanes: $left s before the deadline"
    [ "$left" -gt 30 ] || return 0
    for lane in "$@"; do
        IFS='|' read -r suite members variants seeds <<< "$lane"
        bench run --suite "$suite" --members "$members" ${variants:+--variants "$variants"} ${seeds:+--seeds "$seeds"} \
            --profile "$PROFILE" --device "$DEVICE" --results "$R" --checkpoints "$C" --resume \
            --max-minutes "$(python3 -c "print($left / 60)")" --record-at-deadline \
            > "$OUT/log-lane-${members//,/+}-$(date -u +%H%M%S).txt" 2>&1 &
        pids+=($!)
    done
    for p in "${pids[@]}"; do wait "$p"; echo "== lane $p exit status $?"; done
    tail -n 4 "$OUT"/log-lane-*.txt
}

case $mode in
stage)
    tar xf ".device-data/$arg" -C "$S/.staged" || exit 1
    nvidia-smi -L 2>/dev/null; ls -a; df -h "$S" | tail -1
    python3 -c "import torch, PIL.features as f; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'webp', f.check('webp'))"
    if [ "${3:-}" = last ]; then
        python3 "$S/.staged/unpack_data.py" "$S" || exit 1
    fi
    ;;
measure)
    {
        nvidia-smi --query-gpu=name,memory.total,clocks.max.sm,power.limit --format=csv 2>/dev/null
        bench profile --models segnet,deeplab-largefov,fcn,fcn-learnt-deconv,deconvnet,bilinear-interpolation,segnet-basic,segnet-basic-encoder-addition,segnet-basic-single-channel-decoder,fcn-basic,fcn-basic-no-addition,fcn-basic-no-dim-reduction,fcn-basic-no-addition-no-dim-reduction \
            --device "$DEVICE" --dtype fp32 ${LEASE_PROFILE_ARGS:-} --results "$R"
        mkdir -p "$R/benchmarks"
        # every step variant of the plan's models, timed and checked against the eager step; `bench run` then takes
        # the fastest that matched on this GPU (it reads $R/benchmarks/train_speed-select-*.json)
        python3 -m bench.benchmarks.train_speed --select --share --plan "${LEASE_PLAN:-paper}" --profile "$PROFILE" \
            --device "$DEVICE" --budget "${LEASE_SELECT_SECONDS:-90}" ${LEASE_SPEED_ARGS:-} \
            --out "$R/benchmarks/train_speed-select-$(date -u +%Y%m%dT%H%M%SZ).json"
        echo "== measured after $(( $(date +%s) - t0 )) s"
        plan "$arg"
    } 2>&1 | tee "$OUT/log-measure.txt"
    pack
    ;;
plan)
    { plan "$arg"; } 2>&1 | tee "$OUT/log-plan-$(date -u +%H%M%S).txt"
    pack
    ;;
select)  # the step-variant selection alone (LEASE_PLAN's models, SECONDS of budget), before `lanes`
    mkdir -p "$R/benchmarks"
    python3 -m bench.benchmarks.train_speed --select --share --plan "${LEASE_PLAN:-paper}" --profile "$PROFILE" \
        --device "$DEVICE" --budget "${arg:-90}" ${LEASE_SPEED_ARGS:-} \
        --out "$R/benchmarks/train_speed-select-$(date -u +%Y%m%dT%H%M%SZ).json" 2>&1 | tee "$OUT/log-select.txt"
    ;;
checkpoints)
    cat .device-data/checkpoints.tar.part* | tar xf - -C "$C" && find "$C" -name '*.json' -exec sh -c 'echo "$1: $(cat "$1")"' _ {} \;
    ;;
lanes)
    shift 2
    { lanes "$arg" "$@"; } 2>&1 | tee "$OUT/log-lanes-$(date -u +%H%M%S).txt"
    pack
    ;;
*) echo "usage: $0 stage PART [last] | select [SECONDS] | checkpoints | measure SECONDS | plan SECONDS | lanes SECONDS LANE..."; exit 2 ;;
esac
echo "== call done after $(( $(date +%s) - t0 )) s"
