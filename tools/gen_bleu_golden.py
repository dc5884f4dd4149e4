#!/usr/bin/python3
"""Golden values for recur's corpus BLEU (include/recur/tasks/metrics.h: tokenize_13a, CorpusBleu).

sacreBLEU is not installed here (and pip is unavailable), so this script re-implements its published
algorithm in plain Python, independently of recur's C++, from sacrebleu 2.x:
  - sacrebleu/tokenizers/tokenizer_13a.py (Tokenizer13a) and tokenizer_re.py (TokenizerRegexp):
    the mteval-v13a tokenisation, Python `re.sub` and `str.split` exactly as sacrebleu calls them;
  - sacrebleu/metrics/bleu.py: BLEU._preprocess_segment (optional lowercase, rstrip, tokenise),
    _get_closest_ref_len (closest reference length, the shorter one on a tie), n-gram counts
    clipped by the maximum count over all references, and compute_bleu with
    smooth_method='exp' (the default: the k-th zero precision becomes 1 / (2^k * total)),
    use_effective_order=False (corpus_bleu's default), max order 4.
Two recur choices on top, each marked below:
  - `unknown`: a string that recur writes for an output <unk>; a hypothesis token containing it
    never matches: every hypothesis n-gram with such a token counts in the totals and never as
    a match, and such a segment is never an exact match.
  - `lowercase` lowercases ASCII letters only, as recur's lowercasing of model input and output
    does (data/task_data.h split_words), where sacreBLEU's -lc uses Python's Unicode str.lower().

Run from the repository root:
    /usr/bin/python3 tools/gen_bleu_golden.py
Writes tests/golden/bleu/bleu.json; floats with repr(), so they read back bit-exact.
"""
import json
import math
import os
import re
from collections import Counter

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "golden", "bleu")

# ---- Tokenizer13a (sacrebleu/tokenizers/tokenizer_13a.py + tokenizer_re.py) ----
_RE = [
    (re.compile(r'([\{-\~\[-\` -\&\(-\+\:-\@\/])'), r' \1 '),
    (re.compile(r'([^0-9])([\.,])'), r'\1 \2 '),
    (re.compile(r'([\.,])([^0-9])'), r' \1 \2'),
    (re.compile(r'([0-9])(-)'), r'\1 \2 '),
]


def tokenize_13a(line):
    line = line.replace('<skipped>', '')
    line = line.replace('-\n', '')
    line = line.replace('\n', ' ')
    if '&' in line:
        line = line.replace('&quot;', '"')
        line = line.replace('&amp;', '&')
        line = line.replace('&lt;', '<')
        line = line.replace('&gt;', '>')
    line = f' {line} '
    for rx, repl in _RE:
        line = rx.sub(repl, line)
    return ' '.join(line.split())


def ascii_lower(s):  # recur's lowercasing (see the module comment)
    return ''.join(chr(ord(c) + 32) if 'A' <= c <= 'Z' else c for c in s)


def preprocess(sent, lowercase):  # BLEU._preprocess_segment
    if lowercase:
        sent = ascii_lower(sent)
    return tokenize_13a(sent.rstrip())


def ngrams(tokens, n):
    return Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))


def closest_ref_len(hyp_len, ref_lens):  # BLEU._get_closest_ref_len
    closest_diff, closest_len = -1, -1
    for ref_len in ref_lens:
        diff = abs(hyp_len - ref_len)
        if closest_diff == -1 or diff < closest_diff:
            closest_diff, closest_len = diff, ref_len
        elif diff == closest_diff and ref_len < closest_len:
            closest_len = ref_len
    return closest_len


def segment_stats(hyp, refs, lowercase, unknown):
    h = preprocess(hyp, lowercase).split()
    rs = [preprocess(r, lowercase).split() for r in refs]
    correct, total = [0] * 4, [0] * 4
    for n in range(1, 5):
        ref_max = Counter()
        for r in rs:
            for g, c in ngrams(r, n).items():
                ref_max[g] = max(ref_max[g], c)
        for g, c in ngrams(h, n).items():
            if unknown and any(unknown in tok for tok in g):  # recur: an unknown word never matches
                continue
            correct[n - 1] += min(c, ref_max[g])
        total[n - 1] = max(0, len(h) - n + 1)
    exact = not (unknown and any(unknown in tok for tok in h)) and any(h == r for r in rs)
    return correct, total, len(h), closest_ref_len(len(h), [len(r) for r in rs]), exact


def compute_bleu(correct, total, sys_len, ref_len):  # compute_bleu, smooth_method='exp'
    precisions = [0.0] * 4
    smooth_mteval = 1.0
    for n in range(1, 5):
        if total[n - 1] == 0:
            break
        if correct[n - 1] == 0:
            smooth_mteval *= 2
            precisions[n - 1] = 100.0 / (smooth_mteval * total[n - 1])
        else:
            precisions[n - 1] = 100.0 * correct[n - 1] / total[n - 1]
    if sys_len < ref_len:
        bp = math.exp(1 - ref_len / sys_len) if sys_len > 0 else 0.0
    else:
        bp = 1.0
    my_log = lambda x: -9999999999 if x == 0 else math.log(x)
    return bp * math.exp(sum(my_log(p) for p in precisions) / 4)


def corpus(name, hyps, refs, lowercase=False, unknown=""):
    correct, total, sys_len, ref_len, exact = [0] * 4, [0] * 4, 0, 0, 0
    for h, rs in zip(hyps, refs):
        c, t, hl, rl, e = segment_stats(h, rs, lowercase, unknown)
        correct = [a + b for a, b in zip(correct, c)]
        total = [a + b for a, b in zip(total, t)]
        sys_len += hl
        ref_len += rl
        exact += e
    return {"name": name, "lowercase": lowercase, "unknown": unknown, "hypotheses": hyps, "references": refs,
            "correct": correct, "total": total, "sys_len": sys_len, "ref_len": ref_len, "exact": exact,
            "bleu": compute_bleu(correct, total, sys_len, ref_len)}


UNK = "\uFFFD"  # the token recur's scoring writes for an output <unk>

TOKENIZE = [
    "J'ai froid.", "Qui es-tu\u00a0?", "Il a 3,5 ans. Il est né en 1999-2000.", "« Bonjour », dit-il.",
    "a...b", "x.,y", "9.", ".9", "1,000,000 dollars, 3.14", "Tom&amp;Mary &quot;hi&quot; &lt;b&gt; &amp;lt;",
    "<skipped>word", "end-\nline", "two\nlines", "(parens) [brackets] {braces} ~tilde `tick` ^hat",
    "$5 #1 @home 50% a+b=c a/b a|b a\\b", "tabs\tand\u202fnarrow\u2009thin \u3000ideographic",
    "l'homme aujourd'hui peut-être", "U.S.A. e.g. 2-3 x-ray", "caf\u00e9. na\u00efve, \u00c9t\u00e9!", "  ",
    "\u00e9.\u00e9", "5-", "--", "3.-4", "'quoted' \"double\"",
]


def main():
    cases = [
        corpus("identical", ["The cat sat on the mat ."], [["The cat sat on the mat."]]),
        corpus("partial with brevity", ["the cat sat on the"], [["the cat sat on the mat"]]),
        corpus("no 4-gram match: exp smoothing", ["the cat is on a mat", "a dog"],
               [["the cat sat on the mat"], ["the dog barks"]]),
        corpus("no unigram match", ["x y z w"], [["a b c d"]]),
        corpus("hypothesis shorter than 4", ["hi", "ok there"], [["hi there"], ["ok there friend"]]),
        corpus("empty hypothesis", ["", "the cat sat on the mat"], [["nothing here"], ["the cat sat on the mat"]]),
        corpus("multiple references, clipping by the maximum", ["le le le chat est sur le tapis ."],
               [["le chat est sur le tapis.", "Il y a un chat sur le tapis.", "le le chat"]]),
        corpus("closest reference length, shorter on a tie", ["a b c d e f", "a b c"],
               [["a b c d e", "a b c d e f g", "a"], ["a b", "a b c d", "x y z w v u"]]),
        corpus("French punctuation and numbers", ["J'ai froid .", "Il a 3,5 ans .", "Qui es-tu ?"],
               [["J'ai froid.", "J'ai très froid."], ["Il a 3,5 ans."], ["Qui es-tu\u00a0?", "Qui êtes-vous ?"]]),
        corpus("unknown word never matches", ["j'ai été " + UNK + " .", UNK + " " + UNK],
               [["J'ai été " + UNK + "."], [UNK + " " + UNK]], unknown=UNK),
        corpus("unknown inside a word (character models)", ["the c" + UNK + "t sat on the mat"],
               [["the c" + UNK + "t sat on the mat", "the cat sat on the mat"]], unknown=UNK),
        corpus("lowercase (ASCII)", ["je suis Tom .", "ÉTÉ chaud"], [["Je suis TOM."], ["été chaud"]], lowercase=True),
        corpus("case matters without lowercase", ["je suis Tom ."], [["Je suis TOM."]]),
        corpus("v1 fixture seq2seq (its greedy and beam-3 outputs)",
               ["green red", "white blue red black", "blue blue red black", "black green black"],
               [["green red"], ["white black blue"], ["blue red white"], ["black green green"]]),
    ]
    os.makedirs(OUT, exist_ok=True)
    doc = {"tokenize_13a": [{"text": t, "tokens": tokenize_13a(t).split()} for t in TOKENIZE], "corpus": cases}
    with open(os.path.join(OUT, "bleu.json"), "w", encoding="utf-8") as f:
        json.dump(doc, f, ensure_ascii=False, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
