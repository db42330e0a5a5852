"""lakehouse-offsite: off-site, encrypted, deduplicated copies of lakehouse backups (restic)."""

__version__ = "0.1.0"
