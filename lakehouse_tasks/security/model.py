"""What a security report holds: one finding per check and target, the check names, and the report with its verdict."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..checks import Check, Status, worst

CHECK_PORTS = "ports bound to an address"

CHECK_PRIVILEGED = "not privileged"

CHECK_USER = "non-root user"

CHECK_NNP = "no-new-privileges"

CHECK_CAPS = "capabilities dropped"

CHECK_ROOTFS = "read-only root filesystem"


@dataclass(frozen=True)
class Finding:
    """One check's result for one group (a service, ``credentials``, ``files`` or ``tls``).

    ``origin`` says what was looked at: ``config`` (the merged compose configuration),
    ``container <name>`` (a running container) or ``environment`` (env files, TLS files).
    """

    group: str
    check: Check
    origin: str = "config"

    @property
    def status(self) -> Status:
        return self.check.status

    def to_dict(self) -> dict[str, str]:
        return {"group": self.group, "origin": self.origin, **self.check.to_dict()}


@dataclass(frozen=True)
class SecurityReport:
    environment: str
    findings: tuple[Finding, ...]
    containers_inspected: int = 0

    @property
    def status(self) -> Status:
        return worst(f.check for f in self.findings)

    @property
    def failures(self) -> list[Finding]:
        return [f for f in self.findings if f.status is Status.FAIL]

    def counts(self) -> dict[str, int]:
        counts = {s.value: 0 for s in Status}
        for f in self.findings:
            counts[f.status.value] += 1
        return counts

    def by_group(self) -> dict[str, list[Finding]]:
        groups: dict[str, list[Finding]] = {}
        for f in self.findings:
            groups.setdefault(f.group, []).append(f)
        return groups

    def to_dict(self) -> dict[str, Any]:
        return {
            "environment": self.environment,
            "status": self.status.value,
            "counts": self.counts(),
            "containers_inspected": self.containers_inspected,
            "findings": [f.to_dict() for f in self.findings],
        }


CHECK_SECRETS = "secrets as files"
