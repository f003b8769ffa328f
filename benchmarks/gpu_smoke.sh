#!/usr/bin/env bash
# The GPU paths, checked for what they claim, not only for their exit codes (CI has no GPU; --cpu runs in the suite).
# Every run writes into a fresh folder under --out (default runs/gpu_smoke): run it as often as you like.
#   1. versions (torch, Ultralytics, TensorRT, ONNX Runtime) and `nvidia-smi -L`;
#   2. a dataset with --data and -u given explicitly, drawn large: at imgsz 640 most boxes are over 256 px;
#   3. an online cycle with AMP on cuda:0 (round 0 long enough to find the shapes, 2 online rounds), the FixMatch
#      head reviewing each round's pool labeling there (--fixmatch);
#   4. the online rounds again on devices 0,1 (DDP) from that round 0, when two GPUs are visible;
#   5. TensorRT's boxes against PyTorch's on 16 images, mean IoU > 0.9 (skipped, and said, without TensorRT);
#   6. an online step against a supervised step at batch 16 and 64, real loader workers: fails above 2.5x.
# After each cycle `gpu_smoke_checks.py run` fails unless summary.csv has mAP50-95 > 0 and no NaN and every online
# round's teacher.csv has u_loss > 0 and kept targets > 0. Each step prints PASS, FAIL or SKIP with its time; the
# script exits non-zero if any failed. Sized for 8 minutes on one H100, TensorRT build included (not yet run on one).
#
# --cpu: the same steps at tiny sizes on the CPU (imgsz 64, 1 epoch, a few images), every one that can run without a
# GPU: DDP is skipped, ONNX Runtime stands in for TensorRT, the step ratio is printed but not held to the limit, and a
# 1-epoch model's mAP50-95 of 0 is allowed (everything else is checked as on a GPU).
#
#   bash benchmarks/gpu_smoke.sh                 # from anywhere; yolossl importable by $PYTHON (default python)
#   bash benchmarks/gpu_smoke.sh --cpu --out /tmp/smoke
set -uo pipefail
cpu=0
root=runs/gpu_smoke
while [ $# -gt 0 ]; do
  case $1 in
    --cpu) cpu=1; shift ;;
    --out) root=${2:?--out needs a folder}; shift 2 ;;
    *) echo "usage: gpu_smoke.sh [--cpu] [--out FOLDER]" >&2; exit 2 ;;
  esac
done
here=$(cd "$(dirname "$0")" && pwd)
py=${PYTHON:-python}
mkdir -p "$root" || exit 2
out=$(mktemp -d "$root/run-$(date +%Y%m%d-%H%M%S)-XXXX") || exit 2
export YOLO_OFFLINE=1 YOLO_AUTOINSTALL=false YOLO_CONFIG_DIR=${YOLO_CONFIG_DIR:-$out/ultralytics-settings}
echo "output: $out"
failed=0

step() {  # step NAME COMMAND...: run it, log it to $out/NAME.log, say how it went
  local name=$1; shift
  local start=$SECONDS
  if "$@" >"$out/$name.log" 2>&1; then
    echo "PASS $name ($((SECONDS - start)) s)"
    grep -E "^(run|boxes|step cost|dataset)[ :]" "$out/$name.log" | sed 's/^/  /'
  else
    echo "FAIL $name ($((SECONDS - start)) s): $(grep -E '^FAIL ' "$out/$name.log" | tail -n 1 || true)"
    tail -n 3 "$out/$name.log" | sed 's/^/  | /'
    failed=1
  fi
}
checks() { "$py" "$here/gpu_smoke_checks.py" "$@"; }
cycle() { "$py" -m yolossl cycle "$@"; }
step_cost() {  # step_cost BATCH JSON OPTIONS...: both arms timed, then the ratio held to the limit (GPU)
  local batch=$1 json=$2; shift 2
  "$py" "$here/online_step_cost.py" --device "$device" --imgsz "$imgsz" --batch "$batch" "$@" --out "$json" \
    && checks step-cost "$json" "${limit[@]}"
}
cycle_checked() {  # cycle_checked NAME OPTIONS...: the cycle, then its run folder checked
  local name=$1; shift
  cycle "$@" --project "$out/runs" --name "$name" -q && checks run "$out/runs/$name" "${zero_map[@]}"
}

versions=$(checks versions) || { echo "$versions"; exit 1; }
echo "$versions"
gpus=${versions##*GPUs visible to torch: }
if [ "$cpu" = 1 ]; then
  device=cpu; imgsz=64; big=25; backend=onnxruntime; limit=()
  counts=(--labeled 8 --unlabeled 8 --val 4)
  sizes=(--epochs 1 --round-epochs 1 --rounds 1 --batch 8 --workers 0 --conf 0.002 --uncertain-low 0.001)
  zero_map=(--allow-zero-map)
  box_conf=0.001
  fixmatch_steps=3
  step_costs=("4 --images 8 --epochs 1 --skip 0")
else
  [ "$gpus" -ge 1 ] || { echo "no GPU visible: run with --cpu for the steps that need none"; exit 1; }
  device=0; imgsz=640; big=256; backend=tensorrt; limit=(--limit 2.5)
  counts=(--labeled 100 --unlabeled 200 --val 50)
  # a from-scratch round 0 long enough to find the big shapes; a low global threshold so that its teacher keeps targets
  sizes=(--epochs 40 --round-epochs 2 --rounds 2 --batch 16 --workers 4 --conf 0.05 --uncertain-low 0.01)
  zero_map=()
  box_conf=0.05
  fixmatch_steps=1000
  step_costs=("16 --images 64 --epochs 2 --workers 4" "64 --images 256 --epochs 2 --workers 4")
fi
data=(--data "$out/data/data.yaml" -u "$out/data/unlabeled" --imgsz "$imgsz" --train-arg nbs=16)

step dataset checks dataset "$out/data" --size "$imgsz" --big "$big" "${counts[@]}"
echo "fixmatch_steps: $fixmatch_steps" >"$out/fixmatch.yaml"  # no command-line option: the config file's
step cycle-amp cycle_checked amp "${data[@]}" "${sizes[@]}" --fixmatch --config "$out/fixmatch.yaml" \
  --device "$([ "$cpu" = 1 ] && echo cpu || echo cuda:0)"
round0=$out/runs/amp/round_0/train/weights/best.pt
if [ "$cpu" = 0 ] && [ "$gpus" -ge 2 ]; then
  step cycle-ddp cycle_checked ddp "${data[@]}" "${sizes[@]}" --start-weights "$round0" --device 0,1
else
  echo "SKIP cycle-ddp (two GPUs needed, $gpus visible$([ "$cpu" = 1 ] && echo ', --cpu'))"
fi
if "$py" -c "import $backend" 2>/dev/null; then
  step "boxes-$backend" checks boxes "$round0" "$out/data/unlabeled" --backend "$backend" --device "$device" \
    --imgsz "$imgsz" --conf "$box_conf" --out "$out/export"
else
  echo "SKIP boxes-$backend (pip install 'yolossl[$backend]')"
fi
for cost in "${step_costs[@]}"; do
  read -r batch rest <<<"$cost"
  # shellcheck disable=SC2086  # $rest: more options, split on purpose
  step "step-cost-b$batch" step_cost "$batch" "$out/step_cost_b$batch.json" $rest
done
[ "$failed" = 0 ] && echo "all steps passed ($out)" || echo "some steps failed ($out)"
exit $failed
