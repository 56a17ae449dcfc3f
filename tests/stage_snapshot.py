"""The stages of every chapter's adaptive cascade, as data: what the golden file
``tests/data/cascade_stages.json`` records and :mod:`tests.test_cascade_contract` compares.

Each chapter's ``adaptive`` is called on untrained models of the ``smoke`` configuration with the
cascade runner replaced by a recorder, so no attack runs; every stage is described by its label,
its role and its attack, recursively (class, name, radius, steps, EOT samples, early exit, seed,
the wrapped attack and the model it crafts on), which is everything that decides what the stage
computes. ``python tests/stage_snapshot.py --write`` regenerates the golden file (only when a
change of the cascade is intended: say so in the commit).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
import torch.nn as nn

GOLDEN = Path(__file__).parent / "data" / "cascade_stages.json"
_FIELDS = ("name", "eps", "steps", "eot", "early_stop", "seed", "loss", "n_target_classes", "queries", "confidence",
           "restarts", "abs_stepsize", "rel_stepsize", "flips", "flip_steps", "keep", "block", "pad", "how", "z")


def describe_model(m) -> str:
    """What a stage crafts on, stable across runs: the class, and the modes of its quantizers."""
    if m is None:
        return "-"
    parts = [type(m).__name__]
    for sub in m.modules():
        for attr in ("mode", "backward", "path", "temperature", "backward_z"):
            v = getattr(sub, attr, None)
            if isinstance(v, (str, int, float)) and not isinstance(v, bool):
                parts.append(f"{type(sub).__name__}.{attr}={v}")
    return "; ".join(sorted(set(parts), key=parts.index))


def describe_attack(a) -> dict:
    out = {"class": type(a).__name__}
    for f in _FIELDS:
        v = getattr(a, f, None)
        if isinstance(v, (bool, int, float, str)):
            out[f] = v
    for k, v in sorted(vars(a).items()):
        if isinstance(v, nn.Module):
            out[k] = describe_model(v)
        elif hasattr(v, "threat_model") and hasattr(v, "eps"):
            out[k] = describe_attack(v)
    return out


def describe(stages) -> list[dict]:
    return [{"label": s.label, "role": s.role, "attack": describe_attack(s.attack)} for s in stages]


class _Recorder:
    def __init__(self):
        self.calls = []

    def __call__(self, model, stages, x, y, *args, **kwargs):
        self.calls.append({"model": describe_model(model), "images": len(x), "stages": describe(stages)})
        return None


def _patch(recorder, modules):
    import qutils.cascade as qc

    saved = [(qc, "cascade", qc.cascade)]
    qc.cascade = recorder
    for mod in modules:
        if hasattr(mod, "cascade"):
            saved.append((mod, "cascade", mod.cascade))
            mod.cascade = recorder
    return saved


def _restore(saved):
    for mod, name, value in saved:
        setattr(mod, name, value)


def _images(n=8):
    g = torch.Generator().manual_seed(0)
    return torch.rand(n, 1, 28, 28, generator=g), torch.randint(0, 10, (n,), generator=g)


def chapter_models():
    """``{chapter: (measure module, calls)}``: the adaptive calls the chapter's pages make, on untrained
    models of the ``smoke`` MNIST configuration."""
    from qutils.defenses import BitDepthReduction, InputTransformModel
    from qutils.experiments import dqa, gcln, qlayer, qusecnets, sqa
    from qutils.profiles import get_profile

    prof = get_profile("smoke")
    x, y = _images()
    out = {}

    # QuSecNets: the defenses of the zoo, untrained
    cfg = qusecnets.config_for("mnist", prof)
    from qutils.experiments.qusecnets import zoo as qz

    class R:
        def __init__(self, m):
            self.model = m

    plan = {qusecnets.config.NO_DEFENSE: qz._classifier(cfg)}
    for n in cfg.cq_levels:
        plan[f"CQ n={n}"] = qz._qusecnet(cfg, "cq", n)[0]()
    plan["VQ (eq. 2 cost)"] = qz._qusecnet(cfg, "vq", cfg.vq_levels)[0]()
    plan[qz.BRELU] = qz._classifier(cfg)
    defs = qusecnets.defenses({k: R(v.eval()) for k, v in plan.items()}, cfg)
    out["qusecnets"] = (qusecnets.measure, [lambda cfg=cfg: qusecnets.adaptive(defs, x, y, cfg, progress=False)])

    # Q-Layer
    cfg = qlayer.config_for("mnist", prof)
    targets = {n: qlayer.zoo.build_model(n, cfg).eval() for n in ("CNN", "Q-base")}
    out["qlayer"] = (qlayer.measure, [lambda cfg=cfg: qlayer.adaptive(targets, x, y, cfg, progress=False)])

    # DQA
    cfg = dqa.config_for("mnist", prof)
    names = [*cfg.names(), *cfg.headline]
    dmodels = {n: dqa.zoo.build_model(n, cfg)[0].eval() for n in dict.fromkeys(names)}
    out["dqa"] = (dqa.measure, [lambda cfg=cfg: dqa.adaptive(dmodels, x, y, cfg, progress=False),
                                lambda cfg=cfg: dqa.adaptive(dmodels, x, y, cfg, eps=cfg.eps / 2, names=[cfg.headline[0]],
                                                     n=4, progress=False)])

    # SQA
    cfg = sqa.config_for("mnist", prof)
    snames = ["LARGE SQA", "LARGE full", "LARGE PGD", "LARGE no defense"]
    smodels = {n: sqa.zoo.build_model(n, cfg)[0].eval() for n in snames}
    src = smodels.pop("LARGE no defense")
    out["sqa"] = (sqa.measure, [lambda cfg=cfg: sqa.adaptive(smodels, x, y, cfg, source=src, progress=False),
                                lambda cfg=cfg: sqa.adaptive(smodels, x, y, cfg, light=True, progress=False)])

    # GCLN
    cfg = gcln.config_for("mnist", prof)
    from qutils.defenses.gcln import GCLN
    from qutils.models import build

    target = build("cnn_a", 1, 10, 28).eval()
    g, _ = gcln.zoo.build_cleaner(cfg, cfg.qs[0])
    gmodels = {"No defense": target, "PGD-trained": build("cnn_a", 1, 10, 28).eval(),
               "Feature squeezing": InputTransformModel(BitDepthReduction(1), target).eval(),
               cfg.model_name(cfg.qs[0]): GCLN(g, target).eval()}
    sub = build("cnn_b", 1, 10, 28).eval()
    out["gcln"] = (gcln.measure, [lambda cfg=cfg: gcln.adaptive(gmodels, x, y, cfg, source=sub, progress=False),
                                  lambda cfg=cfg: gcln.adaptive(gmodels, x, y, cfg, light=True, progress=False)])
    return out


def snapshot() -> dict:
    """``{chapter: [call: [model: {model, images, stages}]]}``."""
    torch.manual_seed(0)
    result = {}
    for chapter, (module, calls) in chapter_models().items():
        rec = _Recorder()
        saved = _patch(rec, [module])
        try:
            per_call = []
            for call in calls:
                rec.calls = []
                call()
                per_call.append(rec.calls)
        finally:
            _restore(saved)
        result[chapter] = per_call
    return result


if __name__ == "__main__":
    snap = snapshot()
    if "--write" in sys.argv:
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(json.dumps(snap, indent=1) + "\n")
        print(f"wrote {GOLDEN}")
    else:
        print(json.dumps(snap, indent=1))
