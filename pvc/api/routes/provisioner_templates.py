"""Provisioner endpoints (being built: issue 13)."""
