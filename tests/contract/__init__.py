"""Contract tests of the compose stack and environment files (no image is pulled)."""
