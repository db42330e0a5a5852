"""The one place restic runs: settings from the environment, secrets only in its environment.

restic (Debian's ``restic`` package) keeps each backup as an encrypted, deduplicated snapshot.
Nothing secret is ever on its command line or in the tool's output:

* the repository location goes in ``RESTIC_REPOSITORY`` (it may carry a user name);
* the password is read by restic itself from ``RESTIC_PASSWORD_FILE``
  (``OFFSITE_PASSWORD_FILE``);
* backend credentials (``AWS_ACCESS_KEY_ID`` ...) are read from ``OFFSITE_CREDENTIALS_FILE``
  (``NAME=value`` lines) into the environment of the restic process only;
* restic's stderr is scrubbed of every credential value before it is shown.

A failing restic command becomes one sentence and a documented exit code
(:func:`classify`): wrong password and a location that holds no restic repository are
configuration errors (2), a repository that cannot be reached is a failed command (4).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lakehouse_tasks.plugin import ExitCode, LakehouseError

#: How long a command that only reads the repository's index may take before it counts as
#: "cannot be reached"; copying and restoring take as long as they need.
QUICK_TIMEOUT_S = 120.0
#: Connect timeout of the reachability probe of an S3 / REST endpoint.
PROBE_TIMEOUT_S = 5.0
#: Process variables restic may need beside the ones set here (proxies, ssh agent).
PASS_THROUGH = ("PATH", "HOME", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "SSH_AUTH_SOCK")
TAG_ALL = "lakehouse"


def _bool(text: str | None, default: bool = False) -> bool:
    if text is None or text.strip() == "":
        return default
    return text.strip().lower() in {"1", "true", "yes", "on"}


def _resolve(root: Path, raw: str) -> Path:
    path = Path(raw).expanduser()
    return path if path.is_absolute() else root / path


def display_location(repository: str) -> str:
    """The repository without any ``user:password@`` part, for messages and manifests."""
    return re.sub(r"(?<=://)[^/@]*@", "", repository)


@dataclass(frozen=True)
class ResticConfig:
    """What an environment configures for its off-site copies."""

    environment: str
    project: str
    repository: str
    password_file: Path | None
    credentials_file: Path | None
    cache_dir: Path
    max_age_hours: float = 26.0
    init: bool = False
    executable: str = "restic"
    credentials: Mapping[str, str] = field(default_factory=dict, repr=False)

    @property
    def location(self) -> str:
        return display_location(self.repository)

    @property
    def host(self) -> str:
        """restic's host field of every snapshot: the compose project, so a new machine that
        restores finds the same snapshots."""
        return self.project or f"lakehouse-{self.environment}"

    def env_tag(self) -> str:
        return f"env={self.environment}"


def load_credentials(path: Path) -> dict[str, str]:
    """``NAME=value`` lines (``#`` comments, optional ``export``, optional quotes)."""
    values: dict[str, str] = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        if text.startswith("export "):
            text = text[len("export ") :].strip()
        name, sep, value = text.partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name.strip()):
            raise LakehouseError(
                f"{path}:{number} is not a NAME=value line; write each credential as "
                "NAME=value (e.g. AWS_ACCESS_KEY_ID=...)."
            )
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[name.strip()] = value
    return values


def config_from_env(env: Any, state: Path) -> ResticConfig | None:
    """The environment's off-site settings, or None when ``OFFSITE_REPOSITORY`` is empty.

    A name the environment files do not set is read from the process environment."""

    def get(name: str) -> str:
        return str(env.get(name) or os.environ.get(name) or "")

    repository = get("OFFSITE_REPOSITORY").strip()
    if not repository:
        return None
    root = Path(env.root)
    raw_password = get("OFFSITE_PASSWORD_FILE").strip()
    if not raw_password:
        raise LakehouseError(
            f"OFFSITE_REPOSITORY is set for {env.name} but OFFSITE_PASSWORD_FILE is not; "
            "point it at a file holding the repository's password (mode 0600)."
        )
    password_file = _resolve(root, raw_password)
    if not password_file.is_file():
        raise LakehouseError(
            f"OFFSITE_PASSWORD_FILE {password_file} does not exist; write the repository's "
            "password into it (chmod 600) or fix the path."
        )
    raw_credentials = get("OFFSITE_CREDENTIALS_FILE").strip()
    credentials_file = _resolve(root, raw_credentials) if raw_credentials else None
    credentials: dict[str, str] = {}
    if credentials_file is not None:
        if not credentials_file.is_file():
            raise LakehouseError(
                f"OFFSITE_CREDENTIALS_FILE {credentials_file} does not exist; write the "
                "backend's credentials into it (NAME=value lines, chmod 600) or fix the path."
            )
        credentials = load_credentials(credentials_file)
    raw_age = get("OFFSITE_MAX_AGE_HOURS").strip()
    try:
        max_age = float(raw_age) if raw_age else 26.0
    except ValueError:
        raise LakehouseError(
            f"OFFSITE_MAX_AGE_HOURS={raw_age!r} is not a number of hours; e.g. 26."
        ) from None
    return ResticConfig(
        environment=env.name,
        project=str(getattr(env, "project_name", "") or ""),
        repository=repository,
        password_file=password_file,
        credentials_file=credentials_file,
        cache_dir=state / "restic-cache",
        max_age_hours=max_age,
        init=_bool(get("OFFSITE_INIT")),
        executable=get("OFFSITE_RESTIC") or "restic",
        credentials=credentials,
    )


class Restic:
    """restic for one repository: ``run(args)`` with the secrets in its environment only."""

    def __init__(self, config: ResticConfig) -> None:
        self.config = config
        self._probed = False

    # ---- process ----------------------------------------------------------------------------
    def child_env(self) -> dict[str, str]:
        env = {k: os.environ[k] for k in PASS_THROUGH if k in os.environ}
        env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
        env.setdefault("HOME", str(self.config.cache_dir))
        env.update(self.config.credentials)
        env["RESTIC_REPOSITORY"] = self.config.repository
        env["RESTIC_PASSWORD_FILE"] = str(self.config.password_file)
        env["RESTIC_CACHE_DIR"] = str(self.config.cache_dir)
        env["TZ"] = "UTC"  # --time and snapshot times are UTC
        return env

    def scrub(self, text: str) -> str:
        secrets = [v for v in self.config.credentials.values() if len(v) >= 4]
        if self.config.password_file is not None:
            try:
                password = self.config.password_file.read_text().strip()
            except OSError:
                password = ""
            if len(password) >= 4:
                secrets.append(password)
        for secret in sorted(secrets, key=len, reverse=True):
            text = text.replace(secret, "***")
        if self.config.repository != self.config.location:
            text = text.replace(self.config.repository, self.config.location)
        return text

    def _binary(self) -> str:
        found = shutil.which(self.config.executable)
        if not found:
            raise LakehouseError(
                "restic is not installed; install Debian's restic package "
                "(`apt-get install restic`, scripts/setup does it) to use off-site copies.",
                ExitCode.BAD_INPUT,
            )
        return found

    def probe(self) -> None:
        """For an S3 or REST repository: refuse at once when its server does not answer
        (restic itself retries for minutes)."""
        if self._probed:
            return
        self._probed = True
        repo = self.config.repository
        scheme, _, rest = repo.partition(":")
        if scheme not in ("s3", "rest") or "://" not in rest:
            return
        url = urllib.parse.urlsplit(rest)
        if not url.hostname:
            return
        port = url.port or (443 if url.scheme == "https" else 80)
        try:
            socket.create_connection((url.hostname, port), timeout=PROBE_TIMEOUT_S).close()
        except OSError as exc:
            raise LakehouseError(
                f"The off-site repository {self.config.location} cannot be reached "
                f"({exc.strerror or exc}); check OFFSITE_REPOSITORY, the network and the server.",
                ExitCode.DEPLOY_FAILED,
            ) from None

    def run(
        self,
        args: Sequence[str],
        *,
        cwd: Path | None = None,
        timeout: float | None = QUICK_TIMEOUT_S,
        what: str = "",
        check: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        self.probe()
        self.config.cache_dir.mkdir(parents=True, exist_ok=True)
        argv = [self._binary(), *args]
        try:
            done = subprocess.run(
                argv,
                cwd=cwd,
                env=self.child_env(),
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired:
            raise LakehouseError(
                f"The off-site repository {self.config.location} did not answer within "
                f"{int(timeout or 0)}s ({what or args[0]}); check the network and the server.",
                ExitCode.DEPLOY_FAILED,
            ) from None
        if check and done.returncode != 0:
            raise classify(self, done.returncode, self.scrub(done.stderr), what or args[0])
        return done

    def json(self, args: Sequence[str], **kwargs: Any) -> Any:
        done = self.run([*args, "--json"], **kwargs)
        text = done.stdout.strip()
        if not text:
            return None
        try:
            return json.loads(text)
        except ValueError:
            # backup --json prints one object per line; the summary is the last one
            return json.loads(text.splitlines()[-1])

    # ---- repository -------------------------------------------------------------------------
    def open(self) -> None:
        """Make sure the repository exists and the password opens it (initialising a repository
        that has none only with ``OFFSITE_INIT=true``)."""
        done = self.run(["cat", "config"], check=False, what="open the repository")
        if done.returncode == 0:
            return
        stderr = self.scrub(done.stderr)
        if self.config.init and _no_repository(stderr):
            self.run(["init"], what="initialise the repository")
            return
        raise classify(self, done.returncode, stderr, "open the repository")

    def snapshots(self) -> list[dict[str, Any]]:
        """This environment's snapshots, oldest first."""
        data = self.json(
            ["snapshots", "--tag", f"{TAG_ALL},{self.config.env_tag()}"], what="list snapshots"
        )
        return list(data or [])


def _no_repository(stderr: str) -> bool:
    text = stderr.lower()
    return (
        "is there a repository at the following location" in text
        or "config file does not exist" in text
        or "repository does not exist" in text
    )


def classify(restic: Restic, code: int, stderr: str, what: str) -> LakehouseError:
    """One sentence and an exit code for a failed restic command (stderr already scrubbed)."""
    location = restic.config.location
    text = stderr.lower()
    last = next((ln.strip() for ln in reversed(stderr.splitlines()) if ln.strip()), "")
    if "wrong password" in text or "no key found" in text:
        return LakehouseError(
            f"The password in OFFSITE_PASSWORD_FILE does not open the off-site repository "
            f"{location}; put the repository's password in that file.",
            ExitCode.BAD_INPUT,
        )
    if _no_repository(text) or "unable to open config file" in text:
        return LakehouseError(
            f"{location} holds no restic repository; fix OFFSITE_REPOSITORY, or initialise it "
            "once with OFFSITE_INIT=true (docs/BACKUP.md, off-site copies).",
            ExitCode.BAD_INPUT,
        )
    unreachable = (
        "connection refused",
        "no such host",
        "i/o timeout",
        "network is unreachable",
        "connection reset",
        "ssh: ",
        "subprocess ssh",
    )
    if any(word in text for word in unreachable):
        return LakehouseError(
            f"The off-site repository {location} cannot be reached ({last}); check "
            "OFFSITE_REPOSITORY, the network and the server.",
            ExitCode.DEPLOY_FAILED,
        )
    if "no space left on device" in text:
        return LakehouseError(
            f"restic could not {what}: no space left on device; free some space and run it again.",
            ExitCode.REFUSED,
        )
    return LakehouseError(
        f"restic could not {what} in {location} (exit {code}: {last or 'no message'}).",
        ExitCode.DEPLOY_FAILED,
    )
