"""Generate a synthetic provider repository (docs/format.md §1) of any size, for benchmarks.

The repository is valid: every mailbox identity is unique, grantees are users of the same site,
so that `reconciler validate` accepts it and later benchmarks (plan, apply) can reuse it.

    python bench/gen_repo.py OUT_DIR --mailboxes 10000 --grants 100000 --files 100
"""

from __future__ import annotations

import argparse
import shutil
from dataclasses import dataclass
from pathlib import Path

ACCESS_SETS = (["FullAccess"], ["SendAs"], ["FullAccess", "SendAs"], ["SendOnBehalf"])
CALENDAR_ROLES = ("Reviewer", "Editor", "Author", "AvailabilityOnly", "LimitedDetails")


@dataclass(frozen=True, slots=True)
class RepoSize:
    """What was generated."""

    root: Path
    customers: int
    sites: int
    files: int
    mailboxes: int
    grants: int
    bytes: int


def _customer_yaml(customer: str, index: int, domain: str) -> str:
    return f"""customer:
  name: Customer {index}
  tenant:
    id: 00000000-0000-4000-8000-{index:012d}
    initial_domain: {customer}.onmicrosoft.com
    app_id: 11111111-0000-4000-8000-{index:012d}
    certificate_thumbprint: AB{index:038X}
    certificate_key: env:EXO_KEY_{index}
    exchange: enabled
    connection: sandbox
  mail_domains: [{domain}]
  policy:
    prune: false
    max_deletes: 10
    cross_site_permissions: deny
"""


def _site_yaml(site: str) -> str:
    return f"""site:
  name: Site {site}
  placement:
    office: [{site}]
"""


def generate(
    out: str | Path,
    mailboxes: int = 10_000,
    grants: int = 100_000,
    files: int = 100,
    customers: int = 1,
    sites_per_customer: int = 10,
    users_per_site: int = 50,
) -> RepoSize:
    """Write a repository under ``out`` (replacing it) and return its size.

    ``mailboxes`` shared mailboxes carry ``grants`` grants in all (mailbox permissions and
    calendar permissions, alternating), spread over ``files`` resource files, which are spread
    over the customers' sites.
    """
    root = Path(out)
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    (root / "reconciler.yaml").write_text("policy:\n  prune: false\n", encoding="utf-8")
    site_dirs: list[tuple[Path, str, str]] = []  # (dir, site id, domain)
    for c in range(customers):
        cid = f"customer-{c}"
        domain = f"{cid}.example"
        cdir = root / "customers" / cid
        cdir.mkdir(parents=True)
        (cdir / "customer.yaml").write_text(_customer_yaml(cid, c, domain), encoding="utf-8")
        for s in range(sites_per_customer):
            sid = f"site-{s}"
            sdir = cdir / "sites" / sid
            sdir.mkdir(parents=True)
            (sdir / "site.yaml").write_text(_site_yaml(sid), encoding="utf-8")
            site_dirs.append((sdir, sid, domain))
    total_bytes = 0
    grants_left = grants
    mailbox_no = 0
    for f in range(files):
        sdir, sid, domain = site_dirs[f % len(site_dirs)]
        in_file = mailboxes // files + (1 if f < mailboxes % files else 0)
        lines = ["shared_mailboxes:"]
        for _ in range(in_file):
            mailboxes_left = mailboxes - mailbox_no
            n_grants = grants_left // mailboxes_left if mailboxes_left else 0
            grants_left -= n_grants
            lines.append(f"  - name: Mailbox {mailbox_no}")
            lines.append(f"    alias: mbx-{mailbox_no}")
            lines.append("    retention_policy: Default 2y")
            n_perm = (n_grants + 1) // 2
            n_cal = n_grants - n_perm
            if n_perm:
                lines.append("    permissions:")
                for g in range(n_perm):
                    user = f"user-{(mailbox_no + g) % users_per_site}-{sid}@{domain}"
                    access = ", ".join(ACCESS_SETS[g % len(ACCESS_SETS)])
                    lines.append(f"      - {{user: {user}, access: [{access}]}}")
            if n_cal:
                lines.append("    calendar_permissions:")
                for g in range(n_cal):
                    user = f"user-{(mailbox_no + g + 7) % users_per_site}-{sid}@{domain}"
                    role = CALENDAR_ROLES[g % len(CALENDAR_ROLES)]
                    lines.append(f"      - {{user: {user}, role: {role}}}")
            mailbox_no += 1
        text = "\n".join(lines) + "\n"
        (sdir / f"mailboxes-{f:04d}.yaml").write_text(text, encoding="utf-8")
        total_bytes += len(text.encode())
    return RepoSize(root, customers, len(site_dirs), files, mailboxes, grants, total_bytes)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", help="directory to write (replaced if it exists)")
    parser.add_argument("--mailboxes", type=int, default=10_000)
    parser.add_argument("--grants", type=int, default=100_000)
    parser.add_argument("--files", type=int, default=100)
    parser.add_argument("--customers", type=int, default=1)
    parser.add_argument("--sites", type=int, default=10, help="sites per customer")
    args = parser.parse_args(argv)
    size = generate(args.out, args.mailboxes, args.grants, args.files, args.customers, args.sites)
    print(
        f"{size.root}: {size.customers} customer(s), {size.sites} site(s), {size.files} files, "
        f"{size.mailboxes} mailboxes, {size.grants} grants, {size.bytes / 1e6:.1f} MB of YAML"
    )


if __name__ == "__main__":
    main()
