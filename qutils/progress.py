"""Progress bars: ``tqdm.auto`` (a widget in Jupyter when ipywidgets is present, text otherwise)."""
from __future__ import annotations

import warnings

with warnings.catch_warnings():  # tqdm warns once when ipywidgets is missing; text bars are fine
    warnings.simplefilter("ignore")
    from tqdm.auto import tqdm as _tqdm

__all__ = ["progress"]


def progress(iterable=None, enabled: bool = True, **kwargs):
    """A progress bar over ``iterable``; refreshed at most every few seconds to keep
    notebook outputs small."""
    kwargs.setdefault("mininterval", 3.0)
    kwargs.setdefault("dynamic_ncols", True)
    return _tqdm(iterable, disable=not enabled, **kwargs)
