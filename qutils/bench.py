"""Speed benchmark: PGD-40 on CNN_A, L-infinity 0.3, batch 256, in one process.

    python -m qutils.bench [--device cpu|cuda] [--repeats 3] [--batch 256] [--json results/bench.json]

Images per second for

* ``bare``: a bare PyTorch loop, 40 forward + backward passes and the projection (the floor);
* ``qutils``: :class:`qutils.attacks.PGD` (same step size, random start), early exit off;
* ``qutils early exit``: the same with ``early_stop=True`` (identical results, less work);
* ``foolbox``: foolbox 3's ``LinfPGD`` with the same settings;

and the ratios. The model is CNN_A trained as in chapter 1 (taken from the checkpoint cache,
trained on first use in the active ``QUTILS_PROFILE``), so the early-exit gain is that on an
undefended model. Each timing is the median of ``--repeats`` runs after one warm-up run.

:func:`step_seconds` times one training iteration of each training method on the same batches
(the SQA chapter's cost comparison).
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
import torch.nn.functional as F

from . import environment, get_device, get_profile
from .attacks import PGD
from .data import test_subset
from .train import training_step
from .train_config import make_optimizer
from .utils import seed_everything

STEPS, EPS = 40, 0.3


def bare_pgd(model, x, y, eps=EPS, steps=STEPS, alpha=2.5 * EPS / STEPS, seed=0):
    """The floor: PGD written as plainly as possible (input gradients only)."""
    gen = torch.Generator(device=x.device).manual_seed(seed)
    x_adv = (x + (2 * torch.rand(x.shape, generator=gen, device=x.device) - 1) * eps).clamp(0, 1)
    for _ in range(steps):
        x_adv.requires_grad_(True)
        (g,) = torch.autograd.grad(F.cross_entropy(model(x_adv), y, reduction="sum"), x_adv)
        x_adv = torch.min(torch.max(x_adv.detach() + alpha * g.sign(), x - eps), x + eps).clamp(0, 1)
    return x_adv


def _time(fn, device, repeats):
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        out = fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def run(device=None, repeats: int = 3, batch: int = 256, profile=None, progress: bool = False) -> dict:
    import foolbox as fb

    from .train import TrainConfig, get_trained

    device = torch.device(device) if device is not None else get_device()
    prof = get_profile(profile) if not hasattr(profile, "name") else profile
    model = get_trained("cnn_a", "mnist", TrainConfig(), profile=prof, device=device, progress=progress).model
    model = model.to(device).eval()
    test = test_subset("mnist", batch, seed=0)
    x, y = test.x.to(device), test.y.to(device)
    fmodel = fb.PyTorchModel(model, bounds=(0, 1), device=device)
    fb_pgd = fb.attacks.LinfPGD(steps=STEPS, rel_stepsize=2.5 / STEPS, random_start=True)
    ours = PGD(EPS, steps=STEPS)
    ours_es = PGD(EPS, steps=STEPS, early_stop=True)
    runs = {
        "bare": lambda: bare_pgd(model, x, y),
        "qutils": lambda: ours(model, x, y),
        "qutils early exit": lambda: ours_es(model, x, y),
        "foolbox": lambda: fb_pgd(fmodel, x, y, epsilons=EPS)[1],
    }
    res = {}
    for name, fn in runs.items():
        sec, x_adv = _time(fn, device, repeats)
        with torch.no_grad():
            acc = (model(x_adv).argmax(1) == y).float().mean().item()
        res[name] = {"seconds": sec, "images_per_s": batch / sec, "robust_accuracy": acc}
    ips = {k: v["images_per_s"] for k, v in res.items()}
    return {
        "setting": {"attack": "PGD", "norm": "Linf", "eps": EPS, "steps": STEPS, "batch": batch,
                    "model": "CNN_A", "profile": prof.name, "repeats": repeats, "device": str(device),
                    "threads": torch.get_num_threads()},
        "results": res,
        "ratios": {"qutils / foolbox": ips["qutils"] / ips["foolbox"],
                   "qutils / bare": ips["qutils"] / ips["bare"],
                   "early exit / qutils": ips["qutils early exit"] / ips["qutils"]},
        "environment": environment(),
    }


def format_report(r: dict) -> str:
    s = r["setting"]
    lines = [f"PGD-{s['steps']} Linf eps={s['eps']} on {s['model']}, batch {s['batch']}, device {s['device']} "
             f"({s['threads']} threads), median of {s['repeats']} runs",
             f"{'':20s} {'images/s':>10s} {'seconds':>9s} {'robust acc':>11s}"]
    for name, v in r["results"].items():
        lines.append(f"{name:20s} {v['images_per_s']:10.1f} {v['seconds']:9.2f} {100 * v['robust_accuracy']:10.1f}%")
    lines += [f"{k:20s} {v:10.2f}x" for k, v in r["ratios"].items()]
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m qutils.bench", description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default=None)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--profile", default=None, help="profile whose trained CNN_A is used (default: QUTILS_PROFILE)")
    ap.add_argument("--json", default=None, help="also write the results to this JSON file")
    a = ap.parse_args(argv)
    if a.repeats < 1 or a.batch < 1:
        ap.error("--repeats and --batch must be >= 1")
    r = run(a.device, a.repeats, a.batch, a.profile, progress=True)
    print(format_report(r))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(r, f, indent=2)
    return r


if __name__ == "__main__":
    main()


def step_seconds(methods: dict, batches, device: torch.device | None = None, warmup: int = 1) -> "pd.DataFrame":
    """Seconds per training iteration of each method, measured on the same ``batches``.

    ``methods``: ``{label: (model_fn, TrainConfig)}``, a fresh model per method (``model_fn()``).
    ``batches``: a list of ``(x, y)``; each method runs ``warmup`` untimed iterations on the first
    batch, then one timed iteration per batch, in the same order. Returns one row per method: the
    median and mean seconds per iteration, the number of timed iterations, and the forward passes
    per iteration (counted with a hook: 1 + the attack's gradient steps, + 1 for a clean half)."""
    import statistics
    import time

    import pandas as pd

    batches = list(batches)
    if not batches:
        raise ValueError("step_seconds needs at least one batch")
    device = device or get_device()
    rows = []
    for label, (model_fn, cfg) in methods.items():
        seed_everything(cfg.seed)
        model = model_fn().to(device).train()
        opt = make_optimizer(cfg, model.parameters())
        calls = [0]
        hook = model.register_forward_pre_hook(lambda m, i: calls.__setitem__(0, calls[0] + 1))
        try:
            for _ in range(warmup):
                training_step(model, opt, cfg, batches[0][0].to(device), batches[0][1].to(device))
            calls[0] = 0
            times = []
            for i, (xb, yb) in enumerate(batches):
                xb, yb = xb.to(device), yb.to(device)
                if device.type == "cuda":
                    torch.cuda.synchronize()
                t0 = time.perf_counter()
                training_step(model, opt, cfg, xb, yb, step_seed=i)
                if device.type == "cuda":
                    torch.cuda.synchronize()
                times.append(time.perf_counter() - t0)
        finally:
            hook.remove()
        rows.append({"method": label, "seconds per iteration": statistics.median(times),
                     "mean seconds": statistics.fmean(times), "iterations": len(times),
                     "forward passes per iteration": calls[0] / len(times), "batch size": len(batches[0][0])})
    return pd.DataFrame(rows)
