#!/usr/bin/env bash
# The GPU paths, run once by a maintainer with a GPU (about 8 minutes on one; CI has none):
#   1. a default online cycle (3 online rounds) on the demo with AMP on device 0,
#   2. the same on devices 0,1 (DDP) when two GPUs are visible,
#   3. labeling with --backend tensorrt at batch 16 (skipped, and said, without TensorRT installed),
#   4. the FixMatch head on cuda:0 (an online cycle with --fixmatch --device cuda:0),
#   5. an online step's time against a supervised step at batch 16 and 64 (benchmarks/online_step_cost.py).
# Each step prints PASS or FAIL with its time; the script exits non-zero if any failed.
#
#   bash benchmarks/gpu_smoke.sh            # from the repository root, yolossl installed
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-runs/gpu_smoke}
mkdir -p "$out"
export YOLO_OFFLINE=1 YOLO_AUTOINSTALL=false
failed=0

step() {  # step NAME COMMAND...: run it, log it to $out/NAME.log, say how it went
  local name=$1; shift
  local start=$SECONDS
  if "$@" >"$out/$name.log" 2>&1; then
    echo "PASS $name ($((SECONDS - start)) s)"
  else
    echo "FAIL $name ($((SECONDS - start)) s): $(tail -n 1 "$out/$name.log")"
    failed=1
  fi
}

gpus=$(python -c "import torch; print(torch.cuda.device_count())")
echo "GPUs visible: $gpus ($(python -c "import torch; print(torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'none')"))"
[ "$gpus" -ge 1 ] || { echo "no GPU: nothing to smoke-test"; exit 1; }

small=(--epochs 3 --round-epochs 1 --rounds 3 --imgsz 640 --batch 16 --project "$out/runs" -q)
step cycle-amp yolossl cycle "${small[@]}" --device 0 --name amp
if [ "$gpus" -ge 2 ]; then
  step cycle-ddp yolossl cycle "${small[@]}" --device 0,1 --name ddp
else
  echo "SKIP cycle-ddp (one GPU visible)"
fi
if python -c "import tensorrt" 2>/dev/null; then
  step label-tensorrt yolossl label datasets/demo/unlabeled -m "$out/runs/amp/weights/best.pt" \
    --data datasets/demo/data.yaml --backend tensorrt --batch 16 --device 0 --out "$out/label_trt"
else
  echo "SKIP label-tensorrt (pip install tensorrt)"
fi
step fixmatch-cuda0 yolossl cycle "${small[@]}" --rounds 1 --fixmatch --device cuda:0 --name fixmatch
for batch in 16 64; do
  step "step-cost-b$batch" python benchmarks/online_step_cost.py --device 0 --imgsz 640 --batch "$batch" \
    --images $((batch * 4)) --epochs 2 --out "$out/step_cost_b$batch.json"
  [ -f "$out/step_cost_b$batch.json" ] && python -c "import json,sys; f=json.load(open(sys.argv[1])); \
print(f'  batch $batch: online {f[\"online\"][\"median_s\"]} s, supervised {f[\"supervised\"][\"median_s\"]} s a step, \
ratio {f[\"ratio\"]}')" "$out/step_cost_b$batch.json"
done
exit $failed
