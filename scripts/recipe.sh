#!/usr/bin/env bash
# One-command recipes: train a published configuration, evaluate it on held-out data and print
# the test metric as the last line ("NAME: METRIC VALUE on FILE").
#
#   scripts/recipe.sh NAME [extra `recur train` options...]
#   scripts/recipe.sh --list
#
# NAME: conll-ner, wnut-ner, uci-sentiment, emojify, eng-fra, ptb-small, jsb-music.
#
# Data come from ../shared/data by default (the folder beside the checkout; DATA= to move it).
# TRAIN=, VALID= and TEST= override the files, so the same recipe runs on any split of the same
# format; TRAIN and TEST may each name several files (space-separated), which are concatenated.
# Without VALID the best epoch is chosen on a split of TRAIN (--valid-fraction), never on TEST;
# without TEST the recipe holds out its documented share of TRAIN as the test set (and trains
# on the rest). Other settings:
#   OUT=DIR      run directory (default build/recipes/NAME; started over each time)
#   TIME=SECS    training time cap (default: each recipe's own, at most 40 minutes, so that a
#                recipe with its evaluation stays under 45 minutes on two cores)
#   RECUR=PATH   the recur binary (default build/apps/recur, built if missing)
#   THREADS=N    threads (default 0: all cores; results do not depend on it)
#   UNLABELLED="FILE..."  conll-ner, wnut-ner, uci-sentiment: the unlabelled text word vectors are learned from besides
#                the training tokens (default tiny Shakespeare, PTB train, Debian's fortunes and its
#                gcide, wn and foldoc dictionaries; "" for the training tokens alone)
# Extra arguments go to `recur train` and replace the recipe's own value of the same flag;
# --no-FLAG turns off a switch the recipe sets (--no-crf, --no-lower-words, --no-embeddings-vocab).
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
names="conll-ner wnut-ner uci-sentiment emojify eng-fra ptb-small jsb-music"
usage() { echo "usage: scripts/recipe.sh NAME [recur train options...]; NAME: ${names// /, }" >&2; exit 2; }
[ $# -ge 1 ] || usage
name="$1"; shift
extra=("$@")
if [ "$name" = --list ]; then tr ' ' '\n' <<<"$names"; exit 0; fi
case " $names " in *" $name "*) ;; *) echo "recipe.sh: unknown recipe '$name'" >&2; usage ;; esac

data="${DATA:-$here/../shared/data}"
out="${OUT:-$here/build/recipes/$name}"
threads="${THREADS:-0}"
recur="${RECUR:-$here/build/apps/recur}"
if [ ! -x "$recur" ]; then
  cmake -S "$here" -B "$here/build" -DCMAKE_BUILD_TYPE=Release -DRECUR_BUILD_BENCH=OFF >/dev/null
  cmake --build "$here/build" -j2 --target recur_cli
fi
mkdir -p "$out"
work="$out/data"
rm -rf "$work" && mkdir -p "$work"

# A file list (space-separated) as one file; each list must exist, else a one-line error.
concat() {  # concat DEST FILE...
  local dest="$1"; shift
  for f in "$@"; do [ -r "$f" ] || { echo "recipe.sh: $name: cannot read '$f'" >&2; exit 2; }; done
  cat "$@" >"$dest"
}
# Holds out every Nth line of a line-per-example file: SRC -> TRAIN_OUT, TEST_OUT.
split_every() {  # split_every N SRC TRAIN_OUT TEST_OUT
  awk -v n="$1" -v tr="$3" -v te="$4" '{ if (NR % n == 0) print > te; else print > tr }' "$2"
}
# The metric of `recur eval --json`: the value of its "value" field (or of FIELD).
metric() {  # metric JSON_LINE [FIELD]
  sed -n "s/.*\"${2:-value}\":\([-0-9.eE+]*\).*/\1/p" <<<"$1"
}

train_file=""; valid_args=(); test_file=""; ext=""  # ext: the suffix the task reader goes by (.csv)
# Sets train_file/test_file from TRAIN/TEST or the defaults; $1 = held-out share as "every Nth"
# line (0 = the recipe has a default test file, $3), $2 = default train files.
pick_files() {  # pick_files EVERY_N "DEFAULT_TRAIN..." [DEFAULT_TEST]
  local every="$1" dtrain="$2" dtest="${3:-}"
  # shellcheck disable=SC2086
  concat "$work/train.all$ext" ${TRAIN:-$dtrain}
  if [ -n "${TEST:-}" ]; then
    # shellcheck disable=SC2086
    concat "$work/test$ext" $TEST
    train_file="$work/train.all$ext"
  elif [ "$every" -gt 0 ]; then
    split_every "$every" "$work/train.all$ext" "$work/train$ext" "$work/test$ext"
    train_file="$work/train$ext"
  else
    # shellcheck disable=SC2086
    concat "$work/test$ext" $dtest
    train_file="$work/train.all$ext"
  fi
  test_file="$work/test$ext"
  if [ -n "${VALID:-}" ]; then
    # shellcheck disable=SC2086
    concat "$work/valid$ext" $VALID
    valid_args=(--valid "$work/valid$ext")
  fi
}

# `recur train` with the recipe's ARGS, less every flag (and its value) that EXTRA gives again,
# then EXTRA: CLI11 refuses a flag given twice, and the user's value is the one meant.
train() {  # train TIME_DEFAULT ARGS...
  local secs="${TIME:-$1}"; shift
  local -A given=()
  local a kept=() skip=0
  for a in "${extra[@]}"; do
    [[ "$a" == --* ]] || continue
    given["${a%%=*}"]=1
    [[ "$a" == --no-* ]] && given["--${a#--no-}"]=1  # --no-crf replaces the recipe's --crf
  done
  for a in "$@"; do
    if [ "$skip" = 1 ]; then skip=0; [[ "$a" != --* ]] && continue; fi
    if [[ "$a" == --* && -n "${given[${a%%=*}]:-}" ]]; then [[ "$a" != *=* ]] && skip=1; continue; fi
    kept+=("$a")
  done
  echo "recipe $name: training for at most ${secs}s into $out" >&2
  "$recur" train "${kept[@]}" "${extra[@]}" --out "$out" --force --time "$secs" --threads "$threads" --quiet
}

# EXTRA less each FLAG and its value, into the array `rest`; `taken` is the value the first FLAG
# was last given ("" when absent; a FLAG given without a value is kept in `rest` for recur
# train to refuse by name).
extra_without() {  # extra_without FLAG...
  rest=(); taken=""
  local a f i n=${#extra[@]}
  for ((i = 0; i < n; i++)); do
    a="${extra[$i]}"
    for f in "$@"; do
      if [[ "$a" == "$f="* ]]; then [ "$f" = "$1" ] && taken="${a#*=}"; continue 2; fi
      if [ "$a" = "$f" ] && ((i + 1 < n)) && [[ "${extra[$((i + 1))]}" != --* ]]; then
        [ "$f" = "$1" ] && taken="${extra[$((i + 1))]}"; i=$((i + 1)); continue 2
      fi
    done
    rest+=("$a")
  done
}

# Word vectors learned on this machine (issue 17: no downloaded vectors): `recur embed` skip-gram
# over the training file's own tokens (its labels unused, never the test file's text) and the
# unlabelled text the machine has - tiny Shakespeare, PTB's training text, Debian's fortunes and
# the English dictionaries of Debian's dict-gcide, dict-wn and dict-foldoc (installed by
# scripts/setup.sh; each left out when missing). Writes $work/words.vec (and words2.vec, ... for
# more vector_seeds).
learn_vectors() {  # learn_vectors conll|table TRAIN
  # A table's text (first column) is split and lower-cased as a classifier reads it (--task-words).
  # The taggers read their words lower-cased (--lower-words), so their vectors are learned from
  # lower-cased text too (--lower), and running text is first split the way CoNLL files are
  # (tokenize_text), so that "Germany's" gives "germany" and "'s", not a word no tagger reads.
  local texts=("$work/train_tokens.txt") flags=(--lower) raw=() i=0 ptb="$data/ptb/ptb.train.txt"
  # A tagger told --no-lower-words reads words as written: its vectors keep the case too.
  if [ "$1" = conll ] && [[ " ${extra[*]} " == *" --no-lower-words "* ]]; then flags=(); fi
  if [ "$1" = conll ]; then
    awk 'NF == 0 { if (line != "") print line; line = ""; next } $1 != "-DOCSTART-" { line = line (line ? " " : "") $1 }
         END { if (line != "") print line }' "$2" >"$work/train_tokens.txt"
  else
    cut -f1 "$2" >"$work/train_tokens.txt"
    flags+=(--task-words)
  fi
  if [ -n "${UNLABELLED+set}" ]; then
    # shellcheck disable=SC2206
    local given=($UNLABELLED)
    for f in "${given[@]}"; do [ -r "$f" ] || { echo "recipe.sh: $name: cannot read '$f'" >&2; exit 2; }; done
    raw+=("${given[@]}")
  else
    for f in "$data/tinyshakespeare/input.txt" "$ptb"; do [ -r "$f" ] && raw+=("$f"); done
    if [ -d /usr/share/games/fortunes ]; then
      for f in /usr/share/games/fortunes/*; do case $f in *.dat|*.u8|*/art) ;; *) [ -f "$f" ] && cat "$f";; esac; done |
        grep -v '^%$' | tr -d '\r' >"$work/fortunes.txt" || true
      [ -s "$work/fortunes.txt" ] && raw+=("$work/fortunes.txt")
    fi
    # A dictionary entry becomes one line of its definitions, without the dictd markup
    # (pronunciations \..\, [sources], {cross-references}, "n 1:" sense numbers).
    for d in gcide wn foldoc; do
      if [ ! -r "/usr/share/dictd/$d.dict.dz" ]; then
        echo "recipe $name: /usr/share/dictd/$d.dict.dz is missing (scripts/setup.sh recipes installs it); learning the vectors without it" >&2
        continue
      fi
      zcat "/usr/share/dictd/$d.dict.dz" | awk 'BEGIN { RS = "" } { gsub(/\n/, " "); print }' |
        sed -E 's/\\[^\\]*\\//g; s/\[[^]]*\]//g; s/[{}]//g; s/(^| )(n|v|adj|adv) [0-9]+:/ /g; s/ [0-9]+: / /g' >"$work/dict_$d.txt"
      raw+=("$work/dict_$d.txt")
    done
    # The sentiment classifier's text also has Debian's English thesaurus (mythes-en-us): each
    # entry becomes one line, the word and its synonyms of every sense, antonyms left out, so
    # that words of like meaning get like vectors (BENCHMARKS.md "Ensembles and richer vectors
    # for sentiment"). The taggers' vectors were chosen without it.
    if [ "$1" = table ]; then
      if [ -r /usr/share/mythes/th_en_US_v2.dat ]; then
        awk -F'|' 'NR == 1 { next } /^\(/ { line = head; for (i = 2; i <= NF; i++) { t = $i; if (t ~ /\(antonym\)/) continue
                   sub(/ \([a-z]+ term\)$/, "", t); line = line " " t } print line; next } { head = $1 }' \
          /usr/share/mythes/th_en_US_v2.dat >"$work/thesaurus.txt"
        raw+=("$work/thesaurus.txt")
      else
        echo "recipe $name: /usr/share/mythes/th_en_US_v2.dat is missing (scripts/setup.sh recipes installs it); learning the vectors without it" >&2
      fi
    fi
  fi
  for f in "${raw[@]}"; do
    # PTB's text is split already (and lower-cased: "mr." and "inc." keep their periods, which
    # tokenize_text would split off), so it goes to recur embed as it is.
    if [ "$1" = conll ] && [ "$f" != "$ptb" ]; then
      i=$((i + 1)); tokenize_text <"$f" >"$work/unlabelled_$i.txt"; texts+=("$work/unlabelled_$i.txt")
    else
      texts+=("$f")
    fi
  done
  echo "recipe $name: learning word vectors from ${texts[*]}" >&2
  # One set per seed of vector_seeds (words.vec, words2.vec, ...), learned side by side: recur
  # embed runs on one core.
  local k pids=()
  for k in "${!vector_seeds[@]}"; do
    "$recur" embed "${texts[@]}" "${flags[@]}" --out "$(vectors_file "$k")" --min-count 2 --seed "${vector_seeds[$k]}" --quiet &
    pids+=($!)
  done
  for k in "${pids[@]}"; do wait "$k" || { echo "recipe.sh: $name: recur embed failed" >&2; exit 1; }; done
}
vector_seeds=(1)
vectors_file() { if [ "$1" = 0 ]; then echo "$work/words.vec"; else echo "$work/words$(($1 + 1)).vec"; fi; }

# Running text split as CoNLL-2003 and PTB split theirs: punctuation apart, "'s" and "n't" apart,
# a period at the end of a word of two or more small letters or after a digit apart ("U.S." and
# "Mr." stay; "Mrs." and "Inc." become "Mrs ." and "Inc .", the rule's known misses).
tokenize_text() {
  sed -E "s/([,;:!?()\"]|\[|\])/ \1 /g; s/([a-z]{2,}|[0-9])\.( |\$)/\1 .\2/g; s/([A-Za-z])'s( |\$)/\1 's\2/g;
          s/([A-Za-z])n't( |\$)/\1 n't\2/g; s/ +/ /g; s/^ //"
}

case "$name" in
  conll-ner)
    # Lample et al. 2016's BiLSTM-CRF with a character BiLSTM per word: character embedding 25
    # and LSTM 2x25, tagger LSTM 100 per direction, CRF over BIOES tags (scored in the file's
    # IOB1), Adam; word embeddings start from 100-d vectors recur embed learns here first
    # (learn_vectors; Lample et al. used pre-trained vectors) and are fine-tuned. Best epoch on
    # a tenth of eng.train, stopping after 8 epochs without a better one. Reported: entity F1
    # (conlleval). BENCHMARKS.md "NER with word vectors from recur embed" measured this setting.
    # Words are looked up lower-cased, the characters keep the case (--lower-words; the vectors
    # are learned lower-cased too): BENCHMARKS.md "Lower-cased word lookup", split F1 +0.9,
    # +0.4 and +1.1 on three seeds. The vectors' text includes Debian's dictionaries and is split
    # as CoNLL splits it: BENCHMARKS.md "Vectors from Debian's dictionaries", split F1 +0.9, +0.3
    # and +0.6 on three seeds. The learning rate halves after three validations without a better
    # F1 (--plateau-decay 0.5 --plateau-patience 2): BENCHMARKS.md "Learning rate halved on a
    # plateau", split F1 +0.35, +0.66 and +0.09 on three seeds.
    pick_files 0 "$data/ner/conll2003/eng.train" "$data/ner/conll2003/eng.testa"
    [ ${#valid_args[@]} -gt 0 ] || valid_args=(--valid-fraction 0.1)
    learn_vectors conll "$train_file"
    # The vectors' words join the vocabulary (--embeddings-vocab) and dropout is 0.5: chosen on
    # the split among four settings (BENCHMARKS.md "conll-ner with --embeddings-vocab").
    train 2100 "$train_file" --task tag "${valid_args[@]}" --char-rnn --crf --tag-scheme bioes --bidirectional \
      --layers 1 --hidden 100 --embeddings "$work/words.vec" --embeddings-vocab --lower-words --min-count 2 \
      --dropout 0.5 --batch 32 --epochs 30 --patience 8 --plateau-decay 0.5 --plateau-patience 2
    res=$("$recur" eval "$out/best.safetensors" "$test_file" --json --threads "$threads")
    echo "$name: entity F1 $(awk -v v="$(metric "$res")" 'BEGIN { printf "%.2f", 100 * v }') on ${TEST:-eng.testa}"
    ;;
  wnut-ner)
    # conll-ner's tagger with GRU cells on WNUT-17 (BIO tags, 6 entity types); dev set never used
    # for selection.
    # Its entities are new ones, mostly absent from the training words: the vectors learn_vectors
    # makes join the vocabulary (--embeddings-vocab), so an unseen word that the unlabelled text
    # has keeps its vector; characters get 50 (not 25) per direction, for the names no vector
    # knows. BENCHMARKS.md "WNUT-17 with learned vectors" chose both on the split. Words seen once
    # in training are read as <unk> half the time (--word-dropout 0.5, Lample et al. 2016), since
    # the dev set's entities are unseen words: "Singleton word dropout" there, split F1 +6.8 and
    # +14.2 on two seeds. Words looked up lower-cased (--lower-words): a name seen in another case
    # shares its row; BENCHMARKS.md "Lower-cased word lookup", split F1 +3.5, -0.1 and +1.6 on
    # three seeds. Vectors from text that includes Debian's dictionaries (BENCHMARKS.md "Vectors
    # from Debian's dictionaries": split F1 +4.4, +5.7 and +2.6 on three seeds). The recurrent
    # layer has 200 units per direction (BENCHMARKS.md "Learning rate halved on a plateau": split
    # F1 +3.3, -0.8 and +1.6 on three seeds, although the dev F1 fell by 0.4 on their mean), GRU
    # (BENCHMARKS.md "GRU cells for WNUT-17": split F1 +1.8 on the mean of five seeds, ahead on four).
    pick_files 0 "$data/ner/wnut17/wnut17train.conll" "$data/ner/wnut17/emerging.dev.conll"
    [ ${#valid_args[@]} -gt 0 ] || valid_args=(--valid-fraction 0.1)
    learn_vectors conll "$train_file"
    train 1200 "$train_file" --task tag "${valid_args[@]}" --char-rnn --char-embed 50 --char-hidden 50 --crf \
      --tag-scheme bioes --bidirectional --layers 1 --embeddings "$work/words.vec" --embeddings-vocab --lower-words \
      --hidden 200 --cell gru --dropout 0.5 --word-dropout 0.5 --optimizer adam --lr 0.002 --batch 16 --epochs 40 --patience 8
    res=$("$recur" eval "$out/best.safetensors" "$test_file" --json --threads "$threads")
    echo "$name: entity F1 $(awk -v v="$(metric "$res")" 'BEGIN { printf "%.2f", 100 * v }') on ${TEST:-emerging.dev.conll}"
    ;;
  uci-sentiment)
    # UCI sentiment sentences (amazon, imdb, yelp): every 5th line held out as the test set.
    pick_files 5 "$data/sentiment/uci/amazon_cells_labelled.train.txt $data/sentiment/uci/imdb_labelled.train.txt $data/sentiment/uci/yelp_labelled.train.txt"
    [ ${#valid_args[@]} -gt 0 ] || valid_args=(--valid-fraction 0.15)
    # Word vectors learned first from the training sentences and the unlabelled text, split and
    # lower-cased as the classifier reads text; their words join the vocabulary (BENCHMARKS.md
    # "Sentiment with learned vectors": split accuracy 81.47 -> 82.87).
    # The head reads the BiLSTM's outputs max-pooled over time (--pool max; BENCHMARKS.md
    # "Pooling over time": split accuracy 83.04 -> 84.18, mean of three seeds' splits).
    # The vectors' text includes Debian's dictionaries (BENCHMARKS.md "Vectors from Debian's
    # dictionaries": split accuracy 84.18 -> 86.83, mean of three seeds' splits). The BiLSTM has
    # 128 units per direction (BENCHMARKS.md "Learning rate halved on a plateau": split accuracy
    # 86.83 -> 87.76, mean of three seeds' splits), and GRU cells (BENCHMARKS.md "GRU cells for
    # sentiment": split accuracy 87.75 -> 88.24, mean of five seeds' splits, ahead or tied on each).
    # Ten members: two sets of vectors (recur embed --seed 1 and 2, the same text) and five
    # members on each (--seed S..S+4, S from --seed, default 1). Each member is first trained with
    # its own seeded 15% of the training lines held out to find its best epoch, then trained again
    # on all the lines for that many epochs (no hold-out); the test metric is `recur eval
    # --ensemble` over the retrained members (class probabilities averaged). Chosen on a dev
    # split (every 7th training line) against one member with its best checkpoint, five members
    # on one set of vectors, LSTM cells and the thesaurus left out: BENCHMARKS.md "Ensembles and
    # richer vectors for sentiment", "Retrained members" and "Two sets of vectors" (dev 86.50
    # against 85.40 for five members on one set; ten members on each set, 85.04, were not
    # better: "Twice the members"). MEMBERS=N changes the count per set of vectors; each of the
    # 4N trainings gets TIME*P/(4N) seconds, P members training at once (the thread count).
    # Each word's characters join its embedding (--char-rnn: a 2x25 character BiLSTM), so a
    # misspelt or unseen word is read by its spelling: chosen by five-fold cross-validation over
    # the 1,920 training lines, two seeds (BENCHMARKS.md "Characters for sentiment": 84.24 ->
    # 84.66 for one retrained member, 85.00 -> 85.73 for two).
    vector_seeds=(1 2)
    learn_vectors table "$train_file"
    members="${MEMBERS:-5}"
    [[ "$members" =~ ^[1-9][0-9]*$ ]] || { echo "recipe.sh: $name: MEMBERS='$members', expected a positive count" >&2; exit 2; }
    extra_without --seed  # the recipe's: member k gets S + k
    seed="${taken:-1}"
    [[ "$seed" =~ ^[0-9]+$ ]] || { echo "recipe.sh: $name: --seed '$seed', expected a non-negative integer" >&2; exit 2; }
    extra=("${rest[@]}")
    # The retraining takes only the recipe's and the user's model options: its epochs and the
    # absence of validation are the recipe's.
    extra_without --epochs --patience --valid --valid-fraction
    retrain_extra=("${rest[@]}")
    # Members train side by side, one thread each, as many at once as the recipe has threads: a
    # member this small gains less from a second thread than from a second member beside it
    # (1,680 examples/s each with two side by side against 2,500 for one on two threads).
    parallel="$threads"
    [ "$parallel" -gt 0 ] || parallel=$(nproc 2>/dev/null || echo 1)
    runs=$((2 * members * ${#vector_seeds[@]}))
    per_run=$(( ${TIME:-2400} * parallel / runs ))
    # member V K M: member K on vectors V, trained twice into member$M and all$M (in a subshell:
    # its own threads and extra).
    member() {
      local v="$1" k="$2" m="$3" s ep
      s=$((seed + k)); threads=1
      common=(--task classify --bidirectional --layers 1 --hidden 128 --cell gru --embeddings "$(vectors_file "$v")"
              --embeddings-vocab --char-rnn --pool max --dropout 0.5 --batch 16)
      TIME=$per_run out="$out/member$m" train 0 "$train_file" "${common[@]}" "${valid_args[@]}" --epochs 20 --patience 5 --seed "$s"
      # The epoch of the first best validation accuracy in the member's metrics.
      ep=$(awk '/"type":"valid"/ { match($0, /"accuracy":[0-9.eE+-]+/); a = substr($0, RSTART + 11, RLENGTH - 11) + 0
                match($0, /"epoch":[0-9.eE+-]+/); e = substr($0, RSTART + 8, RLENGTH - 8) + 0
                if (!seen || a > best) { best = a; ep = e; seen = 1 } } END { printf "%d", ep + 0.5 }' "$out/member$m/metrics.jsonl")
      [ "$ep" -ge 1 ] || ep=1
      # Only the epoch count goes on: the first training's checkpoints (weights and Adam's
      # moments over the 160k-word table, 196 MB each) would hold 4 GB of the recipe's 6 GB.
      rm -f "$out/member$m/best.safetensors" "$out/member$m/last.safetensors"
      extra=("${retrain_extra[@]}")
      TIME=$per_run out="$out/all$m" train 0 "$train_file" "${common[@]}" --valid-fraction 0 --epochs "$ep" --seed "$s"
      echo "recipe $name: member $m (vectors $((v + 1)), seed $s): best epoch $ep, retrained on all training lines" >&2
    }
    # A failed member stops the recipe once the members training beside it are done (each is
    # capped at per_run seconds).
    member_failed() { echo "recipe.sh: $name: a member's training failed" >&2; wait; exit 1; }
    ensemble=(); running=0
    for v in "${!vector_seeds[@]}"; do
      for ((k = 0; k < members; k++)); do
        if [ "$running" -ge "$parallel" ]; then
          wait -n || member_failed
          running=$((running - 1))
        fi
        m=$((v * members + k))
        (member "$v" "$k" "$m") &
        running=$((running + 1))
        ensemble+=("$out/all$m/last.safetensors")
      done
    done
    while [ "$running" -gt 0 ]; do
      wait -n || member_failed
      running=$((running - 1))
    done
    ens_args=()
    [ ${#ensemble[@]} -gt 1 ] && ens_args=(--ensemble "$(IFS=,; echo "${ensemble[*]:1}")")
    res=$("$recur" eval "${ensemble[0]}" "$test_file" "${ens_args[@]}" --json --threads "$threads")
    echo "$name: accuracy $(awk -v v="$(metric "$res")" 'BEGIN { printf "%.2f%%", 100 * v }') on ${TEST:-every 5th line of the training files}"
    ;;
  emojify)
    # Coursera Emojify (132 sentences, 5 classes, CSV with a header line): every 5th line held out.
    ext=.csv
    # shellcheck disable=SC2086
    concat "$work/raw.csv" ${TRAIN:-$data/sentiment/emojify/train_emoji.csv}
    # The header line (if any) is kept out of the split so both halves read the same way.
    if head -1 "$work/raw.csv" | grep -qv '^[^,]*,[0-9]'; then tail -n +2 "$work/raw.csv" >"$work/body.csv"; else cp "$work/raw.csv" "$work/body.csv"; fi
    TRAIN="$work/body.csv" pick_files 5 ""
    [ ${#valid_args[@]} -gt 0 ] || valid_args=(--valid-fraction 0.15)
    train 300 "$train_file" --task classify --header 0 --text-column 1 --label-column 2 "${valid_args[@]}" \
      --layers 1 --hidden 64 --embed 50 --dropout 0.5 --batch 8 --epochs 60 --patience 10
    res=$("$recur" eval "$out/best.safetensors" "$test_file" --json --threads "$threads" --header -1 --text-column 1 --label-column 2)
    echo "$name: accuracy $(awk -v v="$(metric "$res")" 'BEGIN { printf "%.2f%%", 100 * v }') on ${TEST:-every 5th line of train_emoji.csv}"
    ;;
  eng-fra)
    # English -> French (Tatoeba pairs): every 20th distinct English sentence, with all of its
    # translations, held out (5%); BLEU with beam 5 against all references of a source.
    concat "$work/train.all" ${TRAIN:-$data/translation/eng-fra.train.txt}
    if [ -n "${TEST:-}" ]; then
      concat "$work/test" $TEST; train_file="$work/train.all"
    else
      awk -F'\t' -v tr="$work/train" -v te="$work/test" \
        '{ if (!($1 in id)) id[$1] = n++; if (id[$1] % 20 == 19) print > te; else print > tr }' "$work/train.all"
      train_file="$work/train"
    fi
    test_file="$work/test"
    if [ -n "${VALID:-}" ]; then concat "$work/valid" $VALID; valid_args=(--valid "$work/valid"); else valid_args=(--valid-fraction 0.05); fi
    # Luong attention (general score) over the bidirectional encoder; <unk> in the output is
    # replaced by the most attended source word before scoring (BENCHMARKS.md "Attention").
    train 2400 "$train_file" --task seq2seq "${valid_args[@]}" --bidirectional --layers 1 --hidden 256 \
      --embed 128 --min-count 2 --dropout 0.2 --batch 64 --epochs 30 --patience 4 --attention general
    res=$("$recur" eval "$out/best.safetensors" "$test_file" --json --beam 5 --replace-unk --threads "$threads")
    echo "$name: BLEU $(awk -v v="$(metric "$res")" 'BEGIN { printf "%.2f", 100 * v }') (beam 5) on ${TEST:-every 20th English sentence held out}"
    ;;
  ptb-small)
    # Zaremba et al. 2014 "small": 2x200 LSTM, SGD lr 1 (20 on the per-token mean), halved each
    # epoch after the 4th, clip 5 (0.25 per token), 13 epochs; valid and test are PTB's own.
    pick_files 0 "$data/ptb/ptb.train.txt" "$data/ptb/ptb.test.txt"
    [ ${#valid_args[@]} -gt 0 ] || { concat "$work/valid" "$data/ptb/ptb.valid.txt"; valid_args=(--valid "$work/valid"); }
    train 2400 "$train_file" "${valid_args[@]}" --level word --cell lstm --layers 2 --hidden 200 --embed 200 \
      --optimizer sgd --lr 20 --lr-decay 0.5 --decay-after 4 --clip-norm 0.25 --batch 20 --seq-len 20 \
      --init-scale 0.1 --epochs 13
    res=$("$recur" eval "$out/best.safetensors" "$test_file" --json --threads "$threads")
    echo "$name: perplexity $(awk -v v="$(metric "$res" perplexity)" 'BEGIN { printf "%.2f", v }') on ${TEST:-ptb.test.txt}"
    ;;
  jsb-music)
    # Bach chorales (16th-note piano rolls, the file's own train/valid/test split), the default
    # duration encoding, LSTM 1x256. Reported: test loss per token with the best model.
    src="${TRAIN:-$data/music/jsb_chorales/jsb-chorales-16th.json}"
    [ -r "$src" ] || { echo "recipe.sh: $name: cannot read '$src'" >&2; exit 2; }
    train 1500 --task music "$src" --layers 1 --hidden 256 --embed 64 --seq-len 64 --batch 16 \
      --dropout 0.2 --valid-every 200 --patience 5
    line=$(grep '"type":"test"' "$out/metrics.jsonl" | tail -1)
    [ -n "$line" ] || { echo "recipe.sh: $name: no test result in $out/metrics.jsonl" >&2; exit 1; }
    echo "$name: test loss $(awk -v v="$(metric "$line" loss)" 'BEGIN { printf "%.4f", v }') nats/token on the file's test split"
    ;;
esac
