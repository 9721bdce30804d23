"""Writing a tiny desired-state repository for a test: one customer, its sites, its files."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path


def write_customer_tree(root: Path, customer: str, customer_yaml: str,
                        sites: Mapping[str, str], files: Mapping[str, str]) -> None:
    """``customers/<customer>/`` under ``root``: customer.yaml, each site's site.yaml, and
    ``files`` (paths relative to the customer's folder)."""
    base = root / "customers" / customer
    (base / "sites").mkdir(parents=True, exist_ok=True)
    (base / "customer.yaml").write_text(customer_yaml)
    for site, text in sites.items():
        (base / "sites" / site).mkdir(exist_ok=True)
        (base / "sites" / site / "site.yaml").write_text(text)
    for relative, text in files.items():
        path = base / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
