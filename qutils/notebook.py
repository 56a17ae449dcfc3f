"""What every chapter notebook does first and last: say what produced its outputs, and how long it took."""
from __future__ import annotations

import time
from dataclasses import dataclass, field

from .profiles import Profile, get_device, get_profile
from .utils import code_version, seed_everything

__all__ = ["Session", "start"]


@dataclass
class Session:
    profile: Profile
    device: object
    code: str
    started: float = field(default_factory=time.time)

    def minutes(self) -> float:
        return (time.time() - self.started) / 60

    def finish(self) -> str:
        """The chapter's run time, for its last output."""
        line = f"run time: {self.minutes():.1f} min (profile {self.profile.name}, device {self.device}, code {self.code})"
        print(line)
        return line


def start(seed: int = 0) -> Session:
    """Seed everything, pick the profile and device, and print the line every notebook starts with
    (``profile: book   device: cpu   code: <commit>``), so a reader knows what produced the page."""
    import pandas as pd

    s = Session(get_profile(), get_device(), code_version())
    seed_everything(seed)
    pd.set_option("display.max_colwidth", 80)
    print(f"profile: {s.profile.name}   device: {s.device}   code: {s.code}")
    return s
