#!/usr/bin/env bash
# Writes the seed corpora of the fuzz targets (fuzz/corpus/<target>/, a few small files each):
# hand-written data files for the text readers, and checkpoints, model files and their JSON
# records made by the recur CLI itself (tiny models, 2 training steps). Deterministic apart from
# the timings inside a checkpoint's train_state. Usage: fuzz/make_corpus.sh [RECUR_BINARY]
# (default build/apps/recur). Re-run it when a file format changes, then commit the result.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
recur=$(realpath "${1:-$here/../build/apps/recur}")
out="$here/corpus"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
rm -rf "$out"
mkdir -p "$out"
seed() { mkdir -p "$out/$1"; cat > "$out/$1/$2"; }

# ---- text, vocabulary ----
printf 'the cat sat on the mat.\na dog ran in the park.\nbirds sing at dawn.\n' | seed text ascii.txt
printf '\xef\xbb\xbfcaf\xc3\xa9 \xe2\x80\xaf! na\xc3\xafve\r\n\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e \xf0\x9f\x8e\xb5\n\n' | seed text utf8_bom_crlf.txt
printf 'one\ntwo words\n   \nthree  spaced   words\n' | seed text lines.txt
printf '{"eos_id":1,"format":"recur.vocab","level":"chars","tokens":["<unk>","<eos>"," ","a","t","\\n","\\u00e9"],"unk_id":0,"version":1}' | seed vocab chars.json
printf '{"eos_id":1,"format":"recur.vocab","level":"words","tokens":["<unk>","<eos>","the","cat","sat","on","mat"],"unk_id":0,"version":1}' | seed vocab words.json

# ---- prepared corpora (recur prepare's shards and manifests; the words and characters are those
# of the fixed vocabularies fuzz_prepared gives a shard, so the seeds are read to the last id) ----
printf 'the cat sat\nsat the\n\ncat\n' > "$work/words.txt"
printf 'ab\nba\n\naab\n' > "$work/chars.txt"
prep() { (cd "$work" && "$recur" prepare "$1" --out "$2" --quiet "${@:3}" > /dev/null); }
prep words.txt pw_stream --level word
prep words.txt pw_lines --level word --mode lines
prep chars.txt pc_stream --level char --shard-tokens 4
prep chars.txt pc_lines --level char --mode lines
seed prepared words_stream.bin < "$work/pw_stream/shard-00000.bin"
seed prepared words_lines.bin < "$work/pw_lines/shard-00000.bin"
seed prepared chars_stream_shard1.bin < "$work/pc_stream/shard-00001.bin"
seed prepared chars_lines.bin < "$work/pc_lines/shard-00000.bin"
seed prepared_manifest words_lines.json < "$work/pw_lines/manifest.json"
seed prepared_manifest chars_stream.json < "$work/pc_stream/manifest.json"
# Prepared task corpora: their strings are those of the fixed tables fuzz_prepared_task gives a
# shard (inputs the/cat/sat, outputs O/B-X/I-X, labels pos/neg), so the seeds read to the end.
printf 'the O\ncat B-X\nsat I-X\n\ncat O\nthe O\n' > "$work/tag.conll"
printf 'the cat\tpos\nsat\tneg\n' > "$work/cls.tsv"
printf 'the cat\tO B-X\nsat\tI-X\n' > "$work/pairs.txt"
prep_task() { (cd "$work" && "$recur" prepare --task "$1" "$2" --out "$3" --quiet --keep-case "${@:4}" > /dev/null); }
(cd "$work" && "$recur" prepare --task tag tag.conll --out pt_tag --quiet --shard-tokens 10 > /dev/null)
prep_task classify cls.tsv pt_cls
prep_task seq2seq pairs.txt pt_pairs
seed prepared_task tag_shard0.bin < "$work/pt_tag/shard-00000.bin"
seed prepared_task tag_shard1.bin < "$work/pt_tag/shard-00001.bin"
seed prepared_task classify.bin < "$work/pt_cls/shard-00000.bin"
seed prepared_task seq2seq.bin < "$work/pt_pairs/shard-00000.bin"

# ---- task files ----
conll() {
  printf -- '-DOCSTART- -X- O O\n\n'
  printf 'John NNP I-NP I-PER\nlives VBZ I-VP O\nin IN I-PP O\nParis NNP I-NP I-LOC\n. . O O\n\n'
  printf 'Anna NNP I-NP B-PER\nworks VBZ I-VP O\nin IN I-PP O\nNew NNP I-NP I-LOC\nYork NNP I-NP I-LOC\n. . O O\n'
}
conll | seed conll train.conll
printf 'John\nlives\nin\nParis\n\nAnna\nworks\n' | seed conll tokens_only.conll
printf 'text\tlabel\ngreat film , loved it\tpos\nboring and long\tneg\nfine\tpos\n' | seed table header.tsv
printf 'text,label\n"great, loved it",pos\n"said ""no"" twice",neg\nfine,pos\n' | seed table quoted.csv
# RFC 4180: a quoted field spanning lines (CRLF inside and between records), and an empty row.
printf 'text,label\r\n"two\r\nlines, one ""text""",pos\r\n\r\n"one line",neg\r\nfine,pos\r\n' | seed table quoted_newline.csv
printf 'red green\tgreen red\nblue black white\twhite black blue\nwhite red\tred white\n' | seed pairs pairs.tsv
printf 'happy\twhat a lovely day\nsad\tit rains again\nhappy\tsun and song\n' | seed generate conditions.tsv
printf 'id,f1,f2,label\ns1,0.5,1.0,a\ns1,0.25,-1.5,b\ns2,1e-3,2,a\n' | seed features per_step.csv
printf 's1,0.5,1.0,"red green"\ns1,0.25,-1.5,\ns2,1,2,blue\n' | seed features target_text.csv
printf 's1,0.5,1.0,"red\ngreen"\ns1,0.25,-1.5,\ns2,1,2,blue\n' | seed features quoted_newline.csv
printf 'the 0.1 0.2 -0.3\ncat 1e-2 0 5\nmat -1 -2 -3\n' | seed word_vectors glove.txt
printf '3 2\nthe 0.5 0.5\ncat -0.5 1.5\ndog 2 2\n' | seed word_vectors word2vec.txt

# ---- music ----
printf '{"train": [[[60, 64, 67], [60, 64, 67], [62, 65], []]], "valid": [[[59, 62, 67, 74]]], "test": [[[60], [60, 60], [72]]]}' | seed jsb chorales.json
mkdir -p "$work/midi"
for v in 0 1; do
  awk -v v=$v 'BEGIN { split("60 62 64 65 67 69 71 72", sc, " "); line = "VELOCITY_19";
               for (i = 0; i < 6; ++i) { p = sc[(i * (v + 1)) % 8 + 1];
                 line = line " NOTE_ON_" p " TIME_SHIFT_" ((i + v) % 3 ? 250 : 500) " NOTE_OFF_" p }
               print line }' > "$work/tune$v.txt"
  "$recur" midi decode "$work/tune$v.txt" -o "$work/midi/tune$v.mid" > /dev/null 2>&1
  seed midi "tune$v.mid" < "$work/midi/tune$v.mid"
done

# ---- models: the CLI's own checkpoints ----
t() { "$recur" train "$@" --threads 1 --force --quiet --steps 2 --hidden 4 --seed 1 > /dev/null 2>&1; }
printf 'the cat sat on the mat.\na dog ran in the park.\nbirds sing at dawn.\nwe read old books.\n' > "$work/t.txt"
t "$work/t.txt" --out "$work/lm_char" --embed 3 --seq-len 8 --batch 2 --layers 1
t "$work/t.txt" --out "$work/lm_word" --level word --mode lines --cell gru --embed 3 --batch 2 --layers 1
t "$work/midi" --task music --out "$work/music" --layers 1 --batch 2 --seq-len 8 --valid-fraction 0.5
conll > "$work/tags.conll"
t "$work/tags.conll" --task tag --out "$work/tag" --embed 3 --batch 2
printf 'great film\tpos\nboring and long\tneg\nfine\tpos\nbad\tneg\n' > "$work/cls.tsv"
t "$work/cls.tsv" --task classify --out "$work/classify" --embed 3 --batch 2
t "$out/pairs/pairs.tsv" --task seq2seq --out "$work/s2s" --embed 3 --batch 2
for m in lm_char lm_word; do seed checkpoint "$m.safetensors" < "$work/$m/last.safetensors"; done
for m in tag classify s2s; do seed task_checkpoint "$m.safetensors" < "$work/$m/last.safetensors"; done
for m in classify tag s2s; do seed model_file "$m.safetensors" < "$work/$m/last.safetensors"; done
# Compressed exports (recur export): I8 weights with F32 row scales, BF16 weights.
"$recur" export "$work/lm_char/last.safetensors" "$work/lm_char_int8.safetensors" --precision int8 2> /dev/null
"$recur" export "$work/s2s/last.safetensors" "$work/s2s_int8.safetensors" --precision int8 2> /dev/null
"$recur" export "$work/tag/last.safetensors" "$work/tag_bf16.safetensors" --precision bf16 2> /dev/null
seed checkpoint lm_char_int8.safetensors < "$work/lm_char_int8.safetensors"
seed model_file s2s_int8.safetensors < "$work/s2s_int8.safetensors"
seed model_file tag_bf16.safetensors < "$work/tag_bf16.safetensors"
seed safetensors lm_char.safetensors < "$work/lm_char/best.safetensors"
seed safetensors classify.safetensors < "$work/classify/last.safetensors"

# ---- JSON records: the first byte picks the reader (fuzz/targets.cpp read_json_config) ----
meta() {  # meta FILE KEY [SUBKEY]: a metadata record of a checkpoint
  /usr/bin/python3 - "$@" <<'PY'
import json, struct, sys
b = open(sys.argv[1], "rb").read()
m = json.loads(b[8:8 + struct.unpack("<Q", b[:8])[0]])["__metadata__"]
v = m[sys.argv[2]]
if len(sys.argv) > 3:
    v = json.dumps(json.loads(v)[sys.argv[3]])
sys.stdout.write(v)
PY
}
record() { { printf "\\x$(printf %02x "$1")"; cat; } | seed json_config "$2"; }
meta "$work/tag/last.safetensors" model | record 0 model_spec_tag.json
meta "$work/s2s/last.safetensors" model | record 0 model_spec_s2s.json
meta "$work/lm_char/last.safetensors" config | record 1 lm_spec.json
meta "$work/lm_char/last.safetensors" train_state options | record 2 train_options.json
meta "$work/lm_char/last.safetensors" train_state | record 3 train_state.json
printf '{"mode":"stream","epoch":1,"offset":10,"batch_size":3,"stream_len":32}' | record 4 stream_state.json
printf '{"mode":"lines","epoch":0,"batch":2,"epoch_rng":["5109f56993cfdcbd","773ea7f96114319a","369bd13cbb87c2e4","bae7f85e2e42e338"],"batch_size":2,"num_examples":9}' | record 5 lines_state.json
meta "$work/music/last.safetensors" task | record 6 music_task.json
du -sh "$out"/*
