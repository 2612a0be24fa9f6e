#!/usr/bin/env python3
"""Data for the intruder-repair walkthrough on SmolLM2-135M (issue 16; Shuttleworth et al. 2024, §5).

Usage: python3 scripts/make_repair_data.py OUT_DIR
Writes OUT_DIR/task-train.jsonl and task-heldout.jsonl (the fine-tune's task: reversing a short
letter string, "Reverse: abc ->" / " cba"), OUT_DIR/probes.jsonl (prior knowledge an instruct model
answers: capitals, small sums, colours of things) and OUT_DIR/corpus.txt (plain English for the
LM-loss forgetting measure). Deterministic (seeded); small enough to commit nowhere (regenerated).
"""
import json
import os
import random
import sys

PROBES = [
    ("The capital of France is", " Paris"), ("The capital of Italy is", " Rome"),
    ("The capital of Germany is", " Berlin"), ("The capital of Spain is", " Madrid"),
    ("The capital of Japan is", " Tokyo"), ("The capital of England is", " London"),
    ("The capital of Russia is", " Moscow"), ("The capital of China is", " Beijing"),
    ("The capital of Egypt is", " Cairo"), ("The capital of Greece is", " Athens"),
    ("The color of the sky on a clear day is", " blue"), ("The color of grass is", " green"),
    ("The color of snow is", " white"), ("Two plus two equals", " four"),
    ("The opposite of hot is", " cold"), ("The opposite of up is", " down"),
    ("The first month of the year is", " January"), ("The day after Monday is", " Tuesday"),
    ("Water is made of hydrogen and", " oxygen"), ("The largest ocean on Earth is the", " Pacific"),
]

CORPUS = """The river runs through the old town, past the market and the church, and on to the sea.
In the morning the fishermen leave the harbour before the sun is up, and they come back at noon.
Children walk to school along the main street, where the bakery sells bread and small cakes.
The library opens at nine and closes at six; on Saturdays it is full of students and old men reading newspapers.
A train leaves for the capital every hour. The journey takes two hours and passes through green hills and farms.
Scientists study the weather by measuring temperature, pressure and wind at many places across the country.
When it rains in the mountains, the river rises and the water turns brown with soil from the fields.
The museum has a collection of paintings, maps and tools that tell the history of the region.
Many people in the town work in the port, loading and unloading ships that carry grain, wood and machines.
In winter the days are short and cold, and families gather in the evening to eat soup and tell stories.
"""


def reverse_pair(r):
    w = "".join(r.choice("abcdefghijklmnop") for _ in range(r.randint(3, 5)))
    return {"prompt": f"Reverse: {w} ->", "completion": " " + w[::-1]}


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    r = random.Random(16)
    for name, n in [("task-train.jsonl", 400), ("task-heldout.jsonl", 40)]:
        with open(os.path.join(out, name), "w") as f:
            for _ in range(n):
                f.write(json.dumps(reverse_pair(r)) + "\n")
    with open(os.path.join(out, "probes.jsonl"), "w") as f:
        for p, c in PROBES:
            f.write(json.dumps({"prompt": p, "completion": c}) + "\n")
    with open(os.path.join(out, "corpus.txt"), "w") as f:
        f.write(CORPUS)


if __name__ == "__main__":
    main()
