#!/usr/bin/env python3
"""Data, tokenizer and random initial weights for the embedded fixture family
(scripts/make_fixture_family.sh does the training with `weightsmith finetune`). Deterministic.

Writes into OUT (default fixtures/family):
  data/corpus.txt               templated synthetic facts (pre-training text)
  data/{capital,profession,continent}-{train,heldout}.jsonl   three fine-tuning tasks
  init/                         config.json, tokenizer.json (byte-level BPE, 512 tokens,
                                trained on the corpus) and random model.safetensors
The facts: 48 countries with capitals and continents (real), 60 invented people with
professions and home countries. Held-out examples ask about entities whose task-format
examples are not in the training file (the facts themselves are in the corpus).
"""
import json, os, random, sys
import torch
from tokenizers import Tokenizer, models, pre_tokenizers, decoders, trainers
import transformers as tf

OUT = sys.argv[1] if len(sys.argv) > 1 else "fixtures/family"
rng = random.Random(1234)

COUNTRIES = [
    ("France", "Paris", "Europe"), ("Germany", "Berlin", "Europe"), ("Italy", "Rome", "Europe"), ("Spain", "Madrid", "Europe"),
    ("Portugal", "Lisbon", "Europe"), ("Austria", "Vienna", "Europe"), ("Poland", "Warsaw", "Europe"), ("Greece", "Athens", "Europe"),
    ("Norway", "Oslo", "Europe"), ("Sweden", "Stockholm", "Europe"), ("Finland", "Helsinki", "Europe"), ("Ireland", "Dublin", "Europe"),
    ("Hungary", "Budapest", "Europe"), ("Belgium", "Brussels", "Europe"), ("Denmark", "Copenhagen", "Europe"), ("Romania", "Bucharest", "Europe"),
    ("Japan", "Tokyo", "Asia"), ("China", "Beijing", "Asia"), ("India", "Delhi", "Asia"), ("Thailand", "Bangkok", "Asia"),
    ("Vietnam", "Hanoi", "Asia"), ("Korea", "Seoul", "Asia"), ("Nepal", "Kathmandu", "Asia"), ("Mongolia", "Ulaanbaatar", "Asia"),
    ("Iran", "Tehran", "Asia"), ("Iraq", "Baghdad", "Asia"), ("Syria", "Damascus", "Asia"), ("Jordan", "Amman", "Asia"),
    ("Egypt", "Cairo", "Africa"), ("Kenya", "Nairobi", "Africa"), ("Ghana", "Accra", "Africa"), ("Nigeria", "Abuja", "Africa"),
    ("Ethiopia", "Addis Ababa", "Africa"), ("Morocco", "Rabat", "Africa"), ("Senegal", "Dakar", "Africa"), ("Uganda", "Kampala", "Africa"),
    ("Peru", "Lima", "South America"), ("Chile", "Santiago", "South America"), ("Brazil", "Brasilia", "South America"),
    ("Argentina", "Buenos Aires", "South America"), ("Colombia", "Bogota", "South America"), ("Ecuador", "Quito", "South America"),
    ("Canada", "Ottawa", "North America"), ("Mexico", "Mexico City", "North America"), ("Cuba", "Havana", "North America"),
    ("Jamaica", "Kingston", "North America"), ("Australia", "Canberra", "Oceania"), ("Fiji", "Suva", "Oceania"),
]
FIRST = ["Ada", "Boris", "Clara", "Dmitri", "Elena", "Farid", "Greta", "Hugo", "Ines", "Jonas", "Kira", "Luca",
         "Mira", "Nils", "Olga", "Pavel", "Rosa", "Sami", "Tara", "Umar"]
LAST = ["Adler", "Brandt", "Costa", "Dorn", "Eberle", "Falk", "Grove", "Holm", "Ivers", "Jung", "Kern", "Lind"]
JOBS = ["doctor", "teacher", "painter", "farmer", "pilot", "chef", "lawyer", "baker", "nurse", "singer", "sailor", "engineer"]


def people():
    names = [f"{f} {l}" for f in FIRST for l in LAST]
    rng.shuffle(names)
    return [(n, rng.choice(JOBS), rng.choice(COUNTRIES)[0]) for n in names[:60]]


PEOPLE = people()
CAPITAL_T = ["The capital of {c} is {k}.", "{k} is the capital of {c}.", "{c} has its capital in {k}.",
             "The capital city of {c} is {k}.", "In {c}, the capital is {k}."]
CONT_T = ["{c} is a country in {r}.", "{c} lies in {r}.", "{c} is in {r}.", "The country {c} is part of {r}."]
JOB_T = ["{p} works as {a} {j}.", "{p} is {a} {j}.", "The job of {p} is {j}.", "{p} lives in {c} and works as {a} {j}.",
         "{p} is {a} {j} from {c}."]


def corpus(n_lines=6000):
    lines = []
    for _ in range(n_lines):
        kind = rng.random()
        if kind < 0.4:
            c, k, r = rng.choice(COUNTRIES); lines.append(rng.choice(CAPITAL_T).format(c=c, k=k))
        elif kind < 0.65:
            c, k, r = rng.choice(COUNTRIES); lines.append(rng.choice(CONT_T).format(c=c, r=r))
        else:
            p, j, c = rng.choice(PEOPLE); lines.append(rng.choice(JOB_T).format(p=p, j=j, c=c, a="an" if j[0] in "aeiou" else "a"))
    return "\n".join(lines) + "\n"


def split(items, k):
    items = list(items)
    rng.shuffle(items)
    return items[k:], items[:k]


def write_jsonl(path, rows):
    with open(path, "w") as f:
        for p, c in rows:
            f.write(json.dumps({"prompt": p, "completion": c}) + "\n")


def tasks(d):
    train, held = split(COUNTRIES, 10)
    write_jsonl(f"{d}/capital-train.jsonl", [(f"Q: What is the capital of {c}?\nA:", f" {k}") for c, k, _ in train])
    write_jsonl(f"{d}/capital-heldout.jsonl", [(f"Q: What is the capital of {c}?\nA:", f" {k}") for c, k, _ in held])
    train, held = split(PEOPLE, 12)
    write_jsonl(f"{d}/profession-train.jsonl", [(f"Name: {p}\nJob:", f" {j}") for p, j, _ in train])
    write_jsonl(f"{d}/profession-heldout.jsonl", [(f"Name: {p}\nJob:", f" {j}") for p, j, _ in held])
    train, held = split(COUNTRIES, 10)
    write_jsonl(f"{d}/continent-train.jsonl", [(f"Country: {c}\nContinent:", f" {r}") for c, _, r in train])
    write_jsonl(f"{d}/continent-heldout.jsonl", [(f"Country: {c}\nContinent:", f" {r}") for c, _, r in held])


def tokenizer(text, path):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=512, special_tokens=["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    # Tasks' prompt words are in the tokenizer's training text too.
    extra = "Q: What is the capital of ?\nA: Name: Job: Country: Continent:\n"
    tok.train_from_iterator([text, extra] * 1, trainer=trainer)
    tok.save(path)
    return tok.get_vocab_size()


def main():
    os.makedirs(f"{OUT}/data", exist_ok=True)
    os.makedirs(f"{OUT}/init", exist_ok=True)
    text = corpus()
    with open(f"{OUT}/data/corpus.txt", "w") as f:
        f.write(text)
    tasks(f"{OUT}/data")
    V = tokenizer(text, f"{OUT}/init/tokenizer.json")
    torch.manual_seed(0)
    cfg = tf.LlamaConfig(vocab_size=512, hidden_size=128, intermediate_size=352, num_hidden_layers=4, num_attention_heads=4,
                         num_key_value_heads=2, max_position_embeddings=256, rms_norm_eps=1e-5, tie_word_embeddings=True,
                         bos_token_id=0, eos_token_id=0, initializer_range=0.02,
                         rope_parameters={"rope_type": "default", "rope_theta": 10000.0})
    model = tf.LlamaForCausalLM(cfg)
    model.save_pretrained(f"{OUT}/init", safe_serialization=True)
    if os.path.exists(f"{OUT}/init/generation_config.json"):
        os.remove(f"{OUT}/init/generation_config.json")
    print(f"tokenizer {V} tokens, model {sum(p.numel() for p in model.parameters())} parameters")


if __name__ == "__main__":
    main()
