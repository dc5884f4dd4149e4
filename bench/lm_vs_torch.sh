#!/usr/bin/env bash
# Trains the same stream language model with recur and with PyTorch (same data split, token
# ids, configuration and number of steps), then scores both models on the validation text
# with recur's evaluator and with PyTorch's. Uses ../shared/data/tinyshakespeare by default.
#   Usage: bench/lm_vs_torch.sh [steps] [extra recur train flags...]
#   Env:   DATA (text file), OUT (work dir), THREADS (default 2)
set -euo pipefail
cd "$(dirname "$0")/.."
steps="${1:-300}"; shift || true
data="${DATA:-../shared/data/tinyshakespeare/input.txt}"
out="${OUT:-build/lm_vs_torch}"
threads="${THREADS:-2}"
recur=build/apps/recur
[ -x "$recur" ] || { echo "lm_vs_torch: build recur first (scripts/test.sh or cmake --build build)" >&2; exit 1; }
mkdir -p "$out"
# char-rnn's split: the first 90% of the lines train, the rest validate.
n=$(wc -l <"$data"); ntrain=$((n * 9 / 10))
head -n "$ntrain" "$data" >"$out/train.txt"
tail -n +"$((ntrain + 1))" "$data" >"$out/valid.txt"

cfg=(--level char --cell lstm --layers 2 --hidden 512 --dropout 0.2 --batch 32 --seq-len 100
     --optimizer adam --lr 0.002 --clip-norm 5 --steps "$steps" --seed 1 "$@")
t0=$(date +%s.%N)
"$recur" train "$out/train.txt" --valid "$out/valid.txt" --out "$out/recur" --force --threads "$threads" \
  --log-every 50 --valid-every "$steps" "${cfg[@]}"
t1=$(date +%s.%N)
OMP_WAIT_POLICY=passive /usr/bin/python3 tools/torch_char_lm.py --recur-ckpt "$out/recur/last.safetensors" \
  --train "$out/train.txt" --valid "$out/valid.txt" --steps "$steps" --batch 32 --seq-len 100 \
  --optimizer adam --lr 0.002 --clip-norm 5 --threads "$threads" --out "$out/torch.safetensors" | tee "$out/torch.log"
echo "recur train seconds: $(echo "$t1 - $t0" | bc)"
echo "== recur's evaluator (recur eval, 10 streams, state carried) =="
for m in recur/last.safetensors torch.safetensors; do
  echo "$m: $("$recur" eval "$out/$m" "$out/valid.txt" --seq-len 100 --threads "$threads" | tr '\n' ' ')"
done
