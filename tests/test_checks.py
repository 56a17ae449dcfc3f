"""qutils.checks: every argument check in one place, each naming the argument it rejects."""
import ast
import math
import re
from pathlib import Path

import pytest
import torch

from qutils.checks import check_batch, check_choice, check_eps, check_finite, check_inputs, check_int, check_positive

ROOT = Path(__file__).resolve().parent.parent / "qutils"


def test_check_int_takes_whole_numbers_only():
    assert check_int(3, "n") == 3 and check_int(2.0, "n") == 2 and isinstance(check_int(2.0, "n"), int)
    assert check_int(0, "pad", minimum=0) == 0 and check_int(16, "bits", maximum=16) == 16
    for bad in (2.5, True, "2", None, math.inf, math.nan, 0, -1):
        with pytest.raises(ValueError, match="steps must be a positive integer"):
            check_int(bad, "steps")
    with pytest.raises(ValueError, match="pad must be a non-negative integer"):
        check_int(-1, "pad", minimum=0)
    with pytest.raises(ValueError, match=r"levels must be an integer >= 2"):
        check_int(1, "levels", minimum=2)
    with pytest.raises(ValueError, match=r"bits must be an integer <= 8"):
        check_int(9, "bits", maximum=8)


def test_number_checks_name_what_they_reject():
    assert check_eps(0) == 0.0 and check_eps(math.inf, allow_inf=True) == math.inf
    for bad in (-0.1, math.nan, math.inf, "x"):
        with pytest.raises(ValueError, match="eps"):
            check_eps(bad)
    assert check_positive("2.5", "z") == 2.5
    for bad in (0, -1, math.inf, math.nan, "z"):
        with pytest.raises(ValueError, match="z must be a positive finite number"):
            check_positive(bad, "z")
    assert check_finite(-3, "value") == -3.0
    for bad in (math.inf, math.nan, None, "a"):
        with pytest.raises(ValueError, match="value must be"):
            check_finite(bad, "value")
    assert check_choice("b", ("a", "b"), "mode") == "b"
    with pytest.raises(ValueError, match=r"mode must be one of \('a', 'b'\)"):
        check_choice("c", ("a", "b"), "mode")


def test_image_checks():
    x, y = torch.rand(2, 1, 4, 4), torch.tensor([0, 1])
    check_inputs(x, y)
    for bad, match in [(x * 2, r"\[0, 1\]"), (x.squeeze(1), "N, C, H, W"), (x[:0], "empty"),
                       (x.masked_fill(x > 0.5, math.nan), "NaN")]:
        with pytest.raises(ValueError, match=match):
            check_inputs(bad)
    for bad, match in [(torch.tensor([0, 1, 2]), "length 2"), (torch.tensor([0.0, 1.0]), "integer"),
                       (torch.tensor([-1, 0]), "labels")]:
        with pytest.raises(ValueError, match=match):
            check_inputs(x, bad)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3))
    check_batch(model, x, y)
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        check_batch(model, x, torch.tensor([0, 3]))


def test_no_module_keeps_checks_of_its_own():
    """Argument checks are defined in qutils/checks.py; elsewhere only named uses of them remain
    (``check_backward``: the protocol's backward choices; ``check_part``: a claim's part)."""
    allowed = {("qutils/defenses/protocol.py", "check_backward"), ("qutils/claims.py", "check_part")}
    found = []
    for path in ROOT.rglob("*.py"):
        rel = path.relative_to(ROOT.parent).as_posix()
        if rel == "qutils/checks.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef) and re.match(r"^_?(check_\w+|finite)$", node.name):
                if (rel, node.name) not in allowed:
                    found.append(f"{rel}:{node.name}")
    assert found == [], f"checks outside qutils.checks: {found}"
