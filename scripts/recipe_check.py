"""Does an adversarial-training recipe give a baseline an expert accepts? (issue 27)

Trains ``ARCH`` on the whole MNIST training split with a recipe of :mod:`qutils.recipes` (into the
checkpoint cache, so a second run only evaluates), then measures on 1,000 fixed test images (seed 1)
the clean accuracy and the robust accuracy at eps 0.3 under APGD-CE and then APGD-T (9 targets),
100 steps each, an image counting as robust only if it survives both. Appends one line of JSON to
``results/recipe_checks.jsonl``.

    python scripts/recipe_check.py lenet madry_pgd 10      # Madry's PGD-10, last iterate, ramp, 10 epochs
    python scripts/recipe_check.py madry_mnist wong_fgsm_rs 10
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from qutils import data as qdata
from qutils.attacks import APGD, APGDT
from qutils.metrics import Accuracy, accuracy
from qutils.profiles import get_profile
from qutils.recipes import madry_pgd, wong_fgsm_rs
from qutils.train import get_trained

EPS = 0.3


def recipe(name: str, epochs: int):
    if name == "madry_pgd":
        return madry_pgd(EPS, epochs, steps=10, ramp_epochs=max(1, epochs // 5))
    if name == "wong_fgsm_rs":
        return wong_fgsm_rs(EPS, epochs=epochs)
    raise ValueError(f"unknown recipe {name!r}: madry_pgd or wong_fgsm_rs")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("arch")
    ap.add_argument("recipe", choices=("madry_pgd", "wong_fgsm_rs"))
    ap.add_argument("epochs", type=int)
    args = ap.parse_args(argv)
    cfg = recipe(args.recipe, args.epochs)
    t0 = time.perf_counter()
    res = get_trained(args.arch, "mnist", cfg, profile=get_profile("book"), progress=False)
    train_s = time.perf_counter() - t0
    m = res.model.eval()
    test = qdata.load("mnist", "test").subset(1000, seed=1)
    x, y = test.x, test.y
    with torch.no_grad():
        alive = m(x).argmax(1) == y
    stages = {}
    for att in (APGD(EPS, steps=100, loss="ce"), APGDT(EPS, steps=100, n_target_classes=9)):
        idx = alive.nonzero().flatten()
        with torch.no_grad():
            ok = m(att(m, x[idx], y[idx])).argmax(1) == y[idx]
        alive[idx[~ok]] = False
        stages[att.name] = int(alive.sum())
    clean, robust = accuracy(m, x, y), Accuracy(int(alive.sum()), len(y))
    row = {"arch": args.arch, "recipe": args.recipe, "epochs": args.epochs, "train": cfg.cache_key(),
           "train_seconds": None if res.from_cache else round(train_s), "clean": clean.value, "clean_ci": clean.ci,
           "robust": robust.value, "robust_ci": robust.ci, "survivors_after": stages, "n": len(y), "eps": EPS,
           "attacks": "APGD-CE then APGD-T (9 targets), 100 steps each"}
    print(json.dumps(row))
    with open(Path(__file__).resolve().parent.parent / "results" / "recipe_checks.jsonl", "a") as f:
        f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
