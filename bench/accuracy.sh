#!/bin/sh
# accuracy.sh runs the paper's accuracy study in miniature (docs/accuracy.md)
# on a model and a held-out `avq synth` set: cloud-only from the PNGs, the
# JPEG baselines, vanilla VQ after block 0's FFN, VQ after block 0's LN1
# (k-means, identity DLP), that module with its DLP trained by distillation,
# and with DLP and a LoRA trained on the task loss, all at K = 4096; then the
# partition block and the codebook size. Each configuration appends one JSON line (its avq eval report) to
# OUT; one already in OUT is skipped, so an interrupted run resumes.
#
#	sh bench/accuracy.sh MODEL_DIR OUT.jsonl [HELD_OUT_SEED] [SCENES]
#
# Calibration and training images come from seed 1001 (the model's training
# set seed), the held-out questions from HELD_OUT_SEED (default 4242).
set -eu
cd "$(dirname "$0")/.."
model=$1
out=$2
seed=${3:-4242}
scenes=${4:-450}
work=${WORK:-$(mktemp -d)}
mkdir -p "$work"
say() { echo "accuracy: $*" >&2; }

avq=$work/avq
go build -o "$avq" ./cmd/avq
[ -d "$work/held-out" ] || "$avq" synth --seed "$seed" --count "$scenes" --out "$work/held-out" >/dev/null
[ -d "$work/calib" ] || "$avq" synth --seed 1001 --count 120 --out "$work/calib" >/dev/null
touch "$out"

# run NAME [eval flags...]: one configuration, once.
run() {
	name=$1
	shift
	if grep -q "\"config\":\"$name\"" "$out"; then
		say "$name: done already"
		return
	fi
	say "$name"
	rm -f "$work/$name.preds.jsonl"
	"$avq" eval --task vqav2 --questions "$work/held-out/questions.json" \
		--annotations "$work/held-out/annotations.json" --images "$work/held-out/images" \
		--model "$model" --max-tokens 8 --json --out "$work/$name.preds.jsonl" "$@" 2>/dev/null |
		sed "s/^{/{\"config\":\"$name\",/" >> "$out"
}

# module NAME BLOCK SITE K: a k-means module (identity DLP), once.
module() {
	[ -f "$work/$1.safetensors" ] || "$avq" calibrate --model "$model" --images "$work/calib/images" \
		--block "$2" --site "$3" --codebook "$4" --seed 1 --out "$work/$1.safetensors" >/dev/null 2>&1
	echo "$work/$1.safetensors"
}

# distilled NAME INIT: the module INIT with its DLP and codebook trained by
# distillation (avq train), once.
distilled() {
	[ -f "$work/$1.safetensors" ] || "$avq" train --model "$model" --images "$work/calib/images" \
		--init "$2" --objective distill --seed 1 --out "$work/$1.safetensors" >/dev/null 2>&1
	echo "$work/$1.safetensors"
}

# Table 2 at K = 4096.
run cloud-png
for q in 90 50 10; do run "jpeg-$q" --jpeg-quality "$q"; done
run vq-ffn-b0 --vq "$(module ffn-b0-k4096 0 ffn 4096)"
run vq-ln1-b0 --vq "$(module ln1-b0-k4096 0 ln1 4096)"
run alignedvq-b0 --vq "$(distilled dlp-b0-k4096 "$work/ln1-b0-k4096.safetensors")"
# + LoRA: the distilled module and a LoRA on the language model trained
# together on the calibration set's questions (the task loss).
if [ ! -d "$work/lora-b0" ]; then
	"$avq" train --model "$model" --images "$work/calib" --data "$work/calib/train.json" \
		--objective task --init "$work/dlp-b0-k4096.safetensors" --seed 1 \
		--out "$work/task-b0-k4096.safetensors" --lora-out "$work/lora-b0" >/dev/null 2>&1
fi
run alignedvq-lora-b0 --vq "$work/task-b0-k4096.safetensors" --lora "$work/lora-b0"

# Figure 7: the partition block.
for b in 1 2; do
	run "vq-ffn-b$b" --vq "$(module "ffn-b$b-k4096" "$b" ffn 4096)"
	run "vq-ln1-b$b" --vq "$(module "ln1-b$b-k4096" "$b" ln1 4096)"
	run "alignedvq-b$b" --vq "$(distilled "dlp-b$b-k4096" "$work/ln1-b$b-k4096.safetensors")"
done

# Table 4: the codebook size.
for k in 256 1024; do
	run "vq-ln1-b0-k$k" --vq "$(module "ln1-b0-k$k" 0 ln1 "$k")"
	run "alignedvq-b0-k$k" --vq "$(distilled "dlp-b0-k$k" "$work/ln1-b0-k$k.safetensors")"
done
say "done: $out"
