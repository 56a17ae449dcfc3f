"""Execute notebooks top to bottom in place (the outputs the book shows), timing each one.

    QUTILS_PROFILE=book python scripts/run_notebook.py notebooks/01_adversarial_examples.ipynb

Uses nbclient with the current Python environment's kernel. Prints the wall-clock time of
every notebook; a failing cell stops with its traceback and leaves the file untouched.

Text progress bars are stored as a live notebook shows them: consecutive stream outputs of a cell
are merged and every carriage return overwrites its line, so a training loop leaves its final
bar, not every refresh. ``--tidy-only`` applies that to already executed notebooks.
"""
from __future__ import annotations

import argparse
import os
import re
import sys
import time

import nbformat
from nbclient import NotebookClient

_CONTROL = re.compile(r"(\r|\n|\x1b\[A|\x1b\[[0-9;]*[B-Za-z])")  # what tqdm writes between its texts


def _overwrite(text: str) -> str:
    """What a terminal shows after ``text``: a carriage return lets the next text replace its line,
    "cursor up" (nested bars) moves back a line; lines left blank by erased bars are dropped."""
    lines, row, fresh = [""], 0, False
    for tok in _CONTROL.split(text):
        if tok == "\n":
            row += 1
            if row == len(lines):
                lines.append("")
            fresh = False
        elif tok == "\r":
            fresh = True
        elif tok == "\x1b[A":
            row = max(row - 1, 0)
        elif tok and not tok.startswith("\x1b"):
            lines[row] = tok if fresh else lines[row] + tok
            fresh = False
    kept = [line.rstrip() for line in lines if line.strip()]
    return "\n".join(kept) + ("\n" if kept else "")


def tidy(nb) -> None:
    """Merge each cell's consecutive stream outputs and apply carriage returns (in place)."""
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        out = []
        for o in cell.get("outputs", []):
            if o.output_type == "stream" and out and out[-1].output_type == "stream" and out[-1].name == o.name:
                out[-1].text += o.text
            else:
                out.append(o)
        for o in out:
            if o.output_type == "stream":
                o.text = _overwrite(o.text)
        cell.outputs = [o for o in out if not (o.output_type == "stream" and not o.text)]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("notebooks", nargs="+")
    ap.add_argument("--timeout", type=int, default=3600, help="seconds per cell")
    ap.add_argument("--output", help="write here instead of in place (one notebook only)")
    ap.add_argument("--tidy-only", action="store_true", help="do not execute; only tidy the stored progress bars")
    args = ap.parse_args(argv)
    if args.output and len(args.notebooks) != 1:
        ap.error("--output takes one notebook")
    print(f"QUTILS_PROFILE={os.environ.get('QUTILS_PROFILE', 'book (default)')}", flush=True)
    for path in args.notebooks:
        nb = nbformat.read(path, as_version=4)
        t = time.time()
        if not args.tidy_only:
            NotebookClient(nb, timeout=args.timeout, kernel_name="python3",
                           resources={"metadata": {"path": os.path.dirname(os.path.abspath(path))}}).execute()
        tidy(nb)
        nbformat.write(nb, args.output or path)
        print(f"{path}: {time.time() - t:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
