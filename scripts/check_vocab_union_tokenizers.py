#!/usr/bin/env python3
"""Checks that the tokenizers weightsmith writes for the vocabulary-merge fixtures load in
Hugging Face `tokenizers` and `transformers` and tokenize like mergekit's (fixtures/merge/vocab/mergekit).

mergekit gives the union's extra tokens ids in a hash map's order (different from run to run), so
the comparison is by token strings: the same pieces for every sample text, the same length, the
same decoded text, and ids that agree through the token -> id maps.

Usage: for each NAME, `weightsmith merge fixtures/merge/vocab/mergekit/NAME.yml -o OUT/NAME`, then
  python3 scripts/check_vocab_union_tokenizers.py OUT
"""
import os
import sys

import tokenizers
import transformers

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
FIXTURES = os.path.join(ROOT, "fixtures", "merge", "vocab", "mergekit")
SAMPLES = ["the thing in the ring", " the", "Ġthe Ġt", "<|im_start|>user\nhi<|im_end|>", "<|endoftext|>",
           "nothing<|brand_new|>the", "tthhee iinngg", "Über naïve 😀"]


def main():
    out = sys.argv[1]
    names = sorted(f[:-4] for f in os.listdir(FIXTURES) if f.endswith(".yml"))
    failures = 0
    for name in names:
        ours_dir, theirs_dir = os.path.join(out, name), os.path.join(FIXTURES, name)
        ours = tokenizers.Tokenizer.from_file(os.path.join(ours_dir, "tokenizer.json"))
        theirs = tokenizers.Tokenizer.from_file(os.path.join(theirs_dir, "tokenizer.json"))
        ours_t = transformers.AutoTokenizer.from_pretrained(ours_dir)
        theirs_t = transformers.AutoTokenizer.from_pretrained(theirs_dir)
        problems = []
        if ours.get_vocab_size() != theirs.get_vocab_size() or len(ours_t) != len(theirs_t):
            problems.append(f"sizes {ours.get_vocab_size()}/{len(ours_t)} vs {theirs.get_vocab_size()}/{len(theirs_t)}")
        tv = theirs.get_vocab()
        for s in SAMPLES:
            a, b = ours.encode(s), theirs.encode(s)
            if a.tokens != b.tokens:
                problems.append(f"{s!r}: {a.tokens} vs {b.tokens}")
            if [tv[t] for t in a.tokens] != b.ids:
                problems.append(f"{s!r}: ids disagree through the token maps")
            if ours_t.tokenize(s) != theirs_t.tokenize(s):
                problems.append(f"{s!r}: transformers {ours_t.tokenize(s)} vs {theirs_t.tokenize(s)}")
            if ours_t.decode(ours_t.encode(s)) != theirs_t.decode(theirs_t.encode(s)):
                problems.append(f"{s!r}: decoded text differs")
        print(f"{name}: {'ok' if not problems else 'DIFFERENT'} ({ours.get_vocab_size()} tokens)")
        for p in problems:
            print("   ", p)
        failures += bool(problems)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
