"""The small, bounded history the plots draw: CPU and memory per service over the last hours.

One JSON line per sample in ``<state dir>/serve/<compose project>.samples.jsonl``; a sample is kept at most
every ``every`` seconds (60 by default: six hours are 360 lines of a few hundred bytes each per
environment), and the file is rewritten to the newest ``keep`` lines once it holds twice as
many, so neither the file nor the memory of a server running for days grows. A restarted
server reads the file back, so the plots survive a restart.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..paths import write_atomic

if TYPE_CHECKING:
    from ..snapshots import HealthSnapshot

DEFAULT_EVERY_S = 60.0
DEFAULT_KEEP = 360  # six hours at one sample a minute


def sample_of(snapshot: HealthSnapshot) -> dict[str, Any]:
    """One sample: the time and, per service, (CPU percent, memory used in bytes)."""
    return {
        "t": round(snapshot.time.timestamp(), 1),
        "services": {
            r.service: [r.cpu_percent, r.mem_used] for r in snapshot.rows if r.state == "running"
        },
    }


class SampleStore:
    """The samples of one environment, in memory (a bounded deque) and on disk."""

    def __init__(
        self, path: Path, *, keep: int = DEFAULT_KEEP, every: float = DEFAULT_EVERY_S
    ) -> None:
        self.path = path
        self.keep = max(1, keep)
        self.every = max(0.0, every)
        self.samples: deque[dict[str, Any]] = deque(maxlen=self.keep)
        self._lines_on_disk = 0
        self._load()

    def _load(self) -> None:
        try:
            lines = self.path.read_text(encoding="utf-8").splitlines()
        except OSError:
            return
        self._lines_on_disk = len(lines)
        for line in lines[-self.keep :]:
            try:
                raw = json.loads(line)
            except ValueError:
                continue  # a line cut by a crash
            if isinstance(raw, Mapping) and "t" in raw:
                self.samples.append(dict(raw))

    def due(self, t: float) -> bool:
        return not self.samples or t - float(self.samples[-1]["t"]) >= self.every

    def add(self, snapshot: HealthSnapshot) -> bool:
        """Keep a sample of ``snapshot`` when the last one is ``every`` seconds old or more."""
        sample = sample_of(snapshot)
        if not self.due(sample["t"]):
            return False
        self.samples.append(sample)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(sample, separators=(",", ":")) + "\n")
        self._lines_on_disk += 1
        if self._lines_on_disk >= 2 * self.keep:
            self._compact()
        return True

    def _compact(self) -> None:
        """Rewrite the file with the kept samples only (atomically: temporary file, rename)."""
        lines = [json.dumps(sample, separators=(",", ":")) + "\n" for sample in self.samples]
        write_atomic(self.path, "".join(lines))
        self._lines_on_disk = len(self.samples)

    def __iter__(self) -> Any:
        return iter(list(self.samples))

    def __len__(self) -> int:
        return len(self.samples)
