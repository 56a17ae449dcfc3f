"""The QuSecNets paper's quantitative claims, as data, and how the chapter measures each.

The paper's figures print no values; every number below is stated in its text (section V, and
section I.A for figure 1). ``MEASURED_BY`` names the row of :func:`.measure.reproduce`'s tables
that measures the same thing under the paper's protocol, and the model whose adaptive worst case
answers it; claims without such a row say why.
"""
from __future__ import annotations

from ...claims import OFFLINE_UNAVAILABLE, PARTS, Claim, Ledger, check_part, mark_baselines
from .config import NO_DEFENSE, QuSecNetsConfig
from .measure import pick
from .zoo import BRELU

__all__ = ["CLAIMS", "MEASURED_BY", "PARTS", "answered_by_adaptive", "ledger"]

#: the cleverhans tutorial's C&W L2 the paper ran: 100 iterations, 1 binary search step, constant 10
_CW = dict(attack="C&W L2", steps=100)
CLAIMS = [
    Claim("qusecnets", "section V (figure 9)", "mnist", NO_DEFENSE, "FGSM", 1.48, eps=0.3, steps=1),
    Claim("qusecnets", "section V (figure 9)", "mnist", "CQ n=2", "FGSM", 97.51, eps=0.3, steps=1,
          note="the paper does not say which n; n = 2 is its own example"),
    Claim("qusecnets", "section V, quoting Zantedeschi et al.", "mnist", BRELU, "FGSM", 94.0, eps=0.3, steps=1),
    Claim("qusecnets", "section V (figure 10)", "mnist", "CQ n=2", value=88.0, **_CW),
    Claim("qusecnets", "section V (figure 10)", "mnist", "CQ n=2", value=90.0, threat_model="black-box (transfer)",
          **_CW),
    Claim("qusecnets", "section V (figure 10)", "mnist", NO_DEFENSE, value=0.0, **_CW),
    Claim("qusecnets", "section V (figure 10)", "cifar10", "CQ n=2", value=54.0, **_CW),
    Claim("qusecnets", "section V (figure 10)", "cifar10", "CQ n=2", value=50.0, threat_model="black-box (transfer)",
          **_CW),
    Claim("qusecnets", "section I.A (figure 1)", "cifar10", "CQ", "FGSM (figure 1)", 24.66,
          note="adversarial images classified correctly after quantization; 8.87% without"),
]
#: the paper's reference models: the undefended network and the defense it quotes
BASELINES = (NO_DEFENSE, BRELU)
CLAIMS = mark_baselines(CLAIMS, BASELINES)

#: claim index -> (table, selection) of our number under the paper's protocol, or a reason it has none
MEASURED_BY = {
    0: ("fgsm", dict(defense=NO_DEFENSE, setting="white-box")),
    1: ("fgsm", dict(defense="CQ n=2", setting="white-box")),
    2: "the paper quotes Zantedeschi et al.'s number for their own network; ours is another network",
    3: ("cw", dict(defense="CQ n=2", setting="white-box", targeted=False)),
    4: ("cw", dict(defense="CQ n=2", setting="black-box", targeted=False)),
    5: ("cw", dict(defense=NO_DEFENSE, setting="white-box", targeted=False)),
}




def answered_by_adaptive(i: int, cfg: QuSecNetsConfig) -> bool:
    """Whether claim ``CLAIMS[i]`` is one the adaptive test answers: FGSM at the headline radius
    ``cfg.eps`` on the chapter's dataset (the cascade's first stage is that very attack)."""
    c, how = CLAIMS[i], MEASURED_BY.get(i)
    return (c.dataset == cfg.dataset and isinstance(how, tuple) and how[0] == "fgsm" and c.eps is not None
            and abs(c.eps - cfg.eps) < 1e-9)


def ledger(cfg: QuSecNetsConfig, measured: dict, adaptive: dict | None = None, section: str = "",
           part: str | None = None) -> Ledger:
    """The chapter's claims for ``cfg.dataset`` joined with our numbers: under the paper's protocol
    from ``measured``, the page's tables by name (:func:`.measure.reproduce`'s ``"fgsm"`` and ``"cw"``),
    and the adaptive worst cases from ``adaptive`` (:func:`.measure.adaptive`, at ``cfg.eps``). FGSM
    claims at another radius than ``cfg.eps`` and minimum-norm (C&W) claims get no adaptive number.

    ``part`` splits the ledger between the chapter's two pages, each claim in exactly one part:
    ``"reproduction"`` (every claim the adaptive test does not answer, and the claims not runnable
    here) and ``"adaptive"`` (the FGSM claims at ``cfg.eps``, joined with the adaptive worst case;
    ``measured`` may then be :func:`.measure.paper_protocol`'s). ``None``: the whole ledger."""
    keep = [i for i, c in enumerate(CLAIMS)
            if part is None or (part == "adaptive") == answered_by_adaptive(i, cfg)]
    needs = sorted({MEASURED_BY[i][0] for i in keep
                    if CLAIMS[i].dataset == cfg.dataset and isinstance(MEASURED_BY.get(i), tuple)})
    tabs = check_part(part, measured, adaptive, tuple(needs))
    own = [CLAIMS[i] for i in keep if CLAIMS[i].dataset == cfg.dataset]
    offline = [CLAIMS[i] for i in keep if CLAIMS[i].dataset in OFFLINE_UNAVAILABLE]
    led = Ledger(own + (offline if any(c.dataset == cfg.dataset for c in CLAIMS) else []))
    for i in keep:
        c = CLAIMS[i]
        if c.key not in led.records or c.dataset != cfg.dataset:
            continue  # another dataset's claim; CIFAR-10: not runnable here
        how = MEASURED_BY.get(i)
        if isinstance(how, str) or how is None:
            led.record(c, reason=how or "not measured by this chapter", section=section)
            continue
        worst = adaptive[c.model].worst if (adaptive and c.eps == cfg.eps and c.model in adaptive) else None
        table, sel = how
        df = tabs[table]
        if "eps" in df and c.eps is not None:
            sel = {**sel, "eps": c.eps}
        ours = pick(df, **sel)
        led.record(c, ours, worst, section=section)
    return led
