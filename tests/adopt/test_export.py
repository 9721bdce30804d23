"""reconciler export: the snapshot (valid against its schema, and planning against it is
planning against the tenant), the auditors' CSV, and the YAML import would write."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import jsonschema
import yaml

from reconciler.adopt.export import CSV_COLUMNS
from reconciler.emulator.sandbox_backend import SandboxBackend
from reconciler.plan.planner import make_plan
from tests.adopt.conftest import EXAMPLE, fresh_live, run

SCHEMA = json.loads((Path(__file__).parents[2] / "schemas" / "snapshot.schema.json").read_text())


def test_snapshot_validates_and_plans_like_the_tenant(tmp_path: Path) -> None:
    live = fresh_live(tmp_path)
    exported = tmp_path / "exported"
    exported.mkdir()
    for customer in ("contoso", "fabrikam"):
        out = exported / f"{customer}.json"
        result = run("export", "--customer", customer, str(EXAMPLE), "--live",
                     f"sandbox:{live}", "--out", str(out))
        assert result.exit_code == 0, result.stderr
        snapshot = json.loads(out.read_text())
        jsonschema.validate(snapshot, SCHEMA)
        assert snapshot["format"] == "exchange-snapshot/1"
    from_tenant = make_plan(EXAMPLE, live_source=f"sandbox:{live}").plan
    from_export = make_plan(EXAMPLE, live_source=f"snapshot:{exported}").plan
    assert from_export.to_json() == from_tenant.to_json()


def _csv(tmp_path: Path, live: Path) -> list[dict[str, str]]:
    out = tmp_path / "contoso.csv"
    result = run("export", "--customer", "contoso", str(EXAMPLE), "--live", f"sandbox:{live}",
                 "--out", str(out), "--format", "csv")
    assert result.exit_code == 0, result.stderr
    with out.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        assert tuple(reader.fieldnames or ()) == CSV_COLUMNS
        return list(reader)


def test_csv_has_a_header_and_one_row_per_mailbox_and_grant(tmp_path: Path) -> None:
    live = fresh_live(tmp_path)
    rows = _csv(tmp_path, live)
    snapshot = json.loads((live / "contoso.json").read_text())
    mailbox_rows = [r for r in rows if r["record"] == "mailbox"]
    assert len(mailbox_rows) == len(snapshot["mailboxes"]) + len(
        snapshot["distribution_groups"])

    def grants(mailbox: str) -> list[tuple[str, str]]:
        return sorted((r["grant_kind"], r["principal"]) for r in rows
                      if r["record"] == "grant" and r["mailbox"] == mailbox)

    # Paris's reception: FullAccess for pierre and marie (marie named by a GUID in Exchange).
    assert grants("accueil-paris@contoso.com") == [
        ("FullAccess", "marie@contoso.com"), ("FullAccess", "pierre@contoso.com")]
    # A group: one row per owner, member and send-as grant.
    london_all = grants("london-all@contoso.com")
    assert ("Owner", "alice@contoso.com") in london_all
    members = {p for k, p in london_all if k == "Member"}
    assert {"alice@contoso.com", "bob@contoso.com"} <= members  # "Alice Smith" and "bob" live
    assert all(m.endswith("@contoso.com") for m in members)
    # System entries (NT AUTHORITY\SELF, inherited, deny) are not grants.
    assert not [r for r in rows if "\\" in r["principal"]]
    # The built-in calendar entries are rows only when they differ from the defaults.
    defaults = [r for r in rows if r["grant_kind"] == "Calendar"
                and r["principal"] in ("Default", "Anonymous")]
    assert all(r["rights"] not in ("AvailabilityOnly", "None") for r in defaults)


def test_csv_cells_never_start_a_formula(tmp_path: Path) -> None:
    live = fresh_live(tmp_path)
    SandboxBackend(live, "contoso").invoke("New-Mailbox", {
        "Shared": True, "Name": "=HYPERLINK(1)", "Alias": "formula",
        "DisplayName": "=HYPERLINK(1)", "PrimarySmtpAddress": "formula@contoso.com"})
    rows = _csv(tmp_path, live)
    [row] = [r for r in rows if r["mailbox"] == "formula@contoso.com"]
    assert row["display_name"] == "'=HYPERLINK(1)"


def test_yaml_export_is_what_import_writes(tmp_path: Path, bare_repo: Path) -> None:
    live = fresh_live(tmp_path)
    out = tmp_path / "contoso.yaml"
    result = run("export", "--customer", "contoso", str(bare_repo), "--live", f"sandbox:{live}",
                 "--out", str(out), "--format", "yaml")
    assert result.exit_code == 0, result.stderr
    exported = {}
    for chunk in out.read_text().split("---\n"):
        path = chunk.splitlines()[0].removeprefix("# ")
        exported[path] = yaml.safe_load(chunk)
    run("import", "--customer", "contoso", str(bare_repo), "--live", f"sandbox:{live}")
    imported = {p.relative_to(bare_repo).as_posix(): yaml.safe_load(p.read_text())
                for p in bare_repo.rglob("imported.yaml")}
    assert exported == imported
