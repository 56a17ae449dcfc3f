"""Execute notebooks top to bottom in place (the outputs the book shows), timing each one.

    QUTILS_PROFILE=book python scripts/run_notebook.py notebooks/01_adversarial_examples.ipynb

Uses nbclient with the current Python environment's kernel. Prints the wall-clock time of
every notebook; a failing cell stops with its traceback and leaves the file untouched.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import nbformat
from nbclient import NotebookClient


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("notebooks", nargs="+")
    ap.add_argument("--timeout", type=int, default=3600, help="seconds per cell")
    ap.add_argument("--output", help="write here instead of in place (one notebook only)")
    args = ap.parse_args(argv)
    if args.output and len(args.notebooks) != 1:
        ap.error("--output takes one notebook")
    print(f"QUTILS_PROFILE={os.environ.get('QUTILS_PROFILE', 'book (default)')}", flush=True)
    for path in args.notebooks:
        nb = nbformat.read(path, as_version=4)
        t = time.time()
        NotebookClient(nb, timeout=args.timeout, kernel_name="python3",
                       resources={"metadata": {"path": os.path.dirname(os.path.abspath(path))}}).execute()
        nbformat.write(nb, args.output or path)
        print(f"{path}: {time.time() - t:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
