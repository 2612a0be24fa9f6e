#!/usr/bin/env python3
"""Counterfactual edit requests for the fixture family (fixtures/edits/), from its corpus.

Reads fixtures/family/data/corpus.txt, collects (country, capital) pairs, and writes
deterministic EasyEdit-style records: prompt "The capital of {} is", subject, target_new = the
capital of another country, ground_truth, two rephrase prompts (other corpus templates), three
locality prompts (other countries' capitals and continents, people's jobs).
train.jsonl: the first 36 countries (sorted), eval.jsonl: the rest; locality.txt: plain prompts.
"""
import json, pathlib, random, re

root = pathlib.Path(__file__).resolve().parent.parent
corpus = (root / "fixtures/family/data/corpus.txt").read_text()
caps = dict(re.findall(r"In ([A-Z][a-z]+), the capital is ([A-Z][a-z]+)\.", corpus))
people = sorted(set(re.findall(r"^([A-Z][a-z]+ [A-Z][a-z]+) works as a [a-z]+\.", corpus, re.M)))
countries = sorted(caps)
rng = random.Random(0)
records = []
for i, c in enumerate(countries):
    others = [x for x in countries if x != c]
    new = caps[rng.choice(others)]
    loc = [f"The capital of {rng.choice(others)} is", f"{rng.choice(others)} is in", f"The job of {rng.choice(people)} is"]
    records.append({"prompt": "The capital of {} is", "subject": c, "target_new": " " + new, "ground_truth": " " + caps[c],
                    "rephrase_prompts": [f"{c} has its capital in", f"In {c}, the capital is"], "locality_prompts": loc})
out = root / "fixtures/edits"
out.mkdir(parents=True, exist_ok=True)
(out / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records[:36]))
(out / "eval.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records[36:]))
loc = ["The capital of Spain is", "The capital of Japan is", "Portugal has its capital in", "Norway is in",
       "Clara Jung is a singer from", "The job of Olga Holm is"]
(out / "locality.txt").write_text("".join(p + "\n" for p in loc))
print(f"{len(records)} records: {len(records[:36])} train, {len(records[36:])} eval")
