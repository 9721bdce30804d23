"""The example repository: valid for the loader and for a third-party JSON Schema checker, and
loaded into exactly the model values the planner relies on."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from reconciler.desired import SCHEMA_DIR, load
from reconciler.model import (
    AccessGrant,
    AutoReply,
    CalendarGrant,
    DistributionGroup,
    Forwarding,
    Location,
    RoomMailbox,
    SharedMailbox,
    SourceRef,
    UserMailbox,
)

from .conftest import run_validate

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "desired-state"
CONTOSO = EXAMPLE / "customers" / "contoso"


def _example_files() -> dict[str, list[Path]]:
    customers = EXAMPLE / "customers"
    resources = [p for p in customers.rglob("*.yaml") if p.name not in ("customer.yaml",
                                                                          "site.yaml")]
    return {
        "customer": sorted(customers.glob("*/customer.yaml")),
        "site": sorted(customers.glob("*/sites/*/site.yaml")),
        "reconciler": [EXAMPLE / "reconciler.yaml"],
        "resources": sorted(resources),
    }


def test_example_validates() -> None:
    result = run_validate(EXAMPLE)
    assert result.exit_code == 0, result.stderr
    assert result.problems == []
    assert "valid (2 customers, 17 resources)" in result.stderr


@pytest.mark.parametrize("kind", ["customer", "site", "reconciler", "resources"])
def test_check_jsonschema_accepts_the_example(kind: str) -> None:
    files = _example_files()[kind]
    assert files
    tool = Path(sys.executable).parent / "check-jsonschema"
    proc = subprocess.run(
        [str(tool), "--schemafile", str(SCHEMA_DIR / f"{kind}.schema.json"), *map(str, files)],
        capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_check_jsonschema_rejects_what_the_loader_rejects(tmp_path: Path) -> None:
    """The published schema is not vacuous: the third-party checker finds the same mistake."""
    bad = tmp_path / "bad.yaml"
    bad.write_text("room_mailboxes:\n  - name: R\n    capacity: twelve\n    colour: red\n")
    tool = Path(sys.executable).parent / "check-jsonschema"
    proc = subprocess.run(
        [str(tool), "--schemafile", str(SCHEMA_DIR / "resources.schema.json"), str(bad)],
        capture_output=True, text=True, check=False)
    assert proc.returncode == 1
    assert "capacity" in proc.stdout + proc.stderr


def test_schemas_are_valid_draft_2020_12() -> None:
    tool = Path(sys.executable).parent / "check-jsonschema"
    schemas = [str(SCHEMA_DIR / f"{k}.schema.json")
               for k in ("customer", "site", "reconciler", "resources")]
    proc = subprocess.run([str(tool), "--check-metaschema", *schemas],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_every_example_file_points_editors_at_its_schema() -> None:
    for kind, files in _example_files().items():
        for file in files:
            first = file.read_text(encoding="utf-8").splitlines()[0]
            prefix = "# yaml-language-server: $schema="
            assert first.startswith(prefix), file
            target = (file.parent / first[len(prefix):]).resolve()
            assert target == (SCHEMA_DIR / f"{kind}.schema.json").resolve(), file


# --- the model values ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def state():  # type: ignore[no-untyped-def]
    return load(EXAMPLE)


def test_customers_and_sites(state) -> None:  # type: ignore[no-untyped-def]
    contoso = state.customers["contoso"].customer
    assert contoso.name == "Contoso Ltd"
    assert contoso.mail_domains == ("contoso.com", "contoso.co.uk")
    assert contoso.default_domain == "contoso.com"
    assert contoso.tenant.id == "6f1c1f2e-0000-4000-8000-000000000001"
    assert contoso.tenant.certificate_key == "env:CONTOSO_EXO_KEY"
    assert contoso.tenant.exchange is True
    assert contoso.tenant.connection == "sandbox"
    assert contoso.owners == ("@contoso/it-admins",)
    assert set(contoso.sites) == {"london", "paris"}
    london = contoso.sites["london"]
    assert london.name == "London HQ"
    assert london.exchange is True
    assert london.placement == (("office", ("London", "London HQ")),)
    assert london.owners == ("@contoso/london-admins",)
    fabrikam = state.customers["fabrikam"].customer
    assert fabrikam.sites["berlin"].placement == (("city", ("Berlin",)),)
    assert fabrikam.tenant.certificate_key == "file:/etc/reconciler/fabrikam.pem"


def test_policy_merges_provider_defaults_key_by_key(state) -> None:  # type: ignore[no-untyped-def]
    contoso = state.customers["contoso"].customer.policy
    assert (contoso.prune, contoso.max_deletes, contoso.max_change_percent) == (False, 5, 75.0)
    assert contoso.cross_site_permissions == "deny"
    assert contoso.protect == frozenset({"ceo-office@contoso.com"})
    fabrikam = state.customers["fabrikam"].customer.policy
    assert (fabrikam.prune, fabrikam.max_deletes) == (True, 3)
    assert fabrikam.max_change_percent == 25.0  # from reconciler.yaml
    assert fabrikam.cross_site_permissions == "allow"


def test_identities_and_locations(state) -> None:  # type: ignore[no-untyped-def]
    resources = state.customers["contoso"].resources
    assert set(resources) == {
        "ceo-office@contoso.com", "support-london@contoso.com", "sales-london@contoso.com",
        "finance@contoso.com", "board-room-3@contoso.com", "london-all@contoso.com",
        "alice@contoso.com", "bob@contoso.com", "dave@contoso.com", "pierre@contoso.com",
        "accueil-paris@contoso.com", "salle-lumiere@contoso.com", "paris-all@contoso.com",
        "lena@contoso.com",
    }
    assert resources["ceo-office@contoso.com"].located_at == Location("contoso")
    assert resources["lena@contoso.com"].located_at == Location("contoso")
    assert resources["ceo-office@contoso.com"].address == (
        "contoso/-/shared_mailbox/ceo-office@contoso.com")
    assert resources["pierre@contoso.com"].located_at == Location("contoso", "paris")
    sales = resources["sales-london@contoso.com"]
    assert isinstance(sales, SharedMailbox)
    assert (sales.name, sales.alias) == ("Sales London", "sales-london")  # derived
    room = resources["salle-lumiere@contoso.com"]
    assert isinstance(room, RoomMailbox)
    assert (room.name, room.alias, room.capacity) == ("Salle Lumière", "salle-lumiere", 8)


def test_grants(state) -> None:  # type: ignore[no-untyped-def]
    support = state.customers["contoso"].resources["support-london@contoso.com"]
    assert support.permissions == (
        AccessGrant("alice@contoso.com", frozenset({"FullAccess", "SendAs"})),
        AccessGrant("bob@contoso.com", frozenset({"FullAccess"}), automapping=False),
    )
    assert support.calendar_permissions == (
        CalendarGrant("carol@contoso.com", role="Reviewer"),
        CalendarGrant("Default", role="AvailabilityOnly"),
    )
    file = str(EXAMPLE / "customers/contoso/sites/london/mailboxes.yaml")
    assert support.source == SourceRef(file, 8, 5)
    assert support.permissions[1].source == SourceRef(file, 14, 9)
    alice = state.customers["contoso"].resources["alice@contoso.com"]
    assert alice.calendar_permissions == (
        CalendarGrant("bob@contoso.com", role="Editor", delegate=True, private_items=True),)
    assert alice.calendar_permissions[0].sharing_permission_flags == (
        "Delegate,CanViewPrivateItems")
    konferenz = state.customers["fabrikam"].resources["konferenz-hamburg@fabrikam.de"]
    assert konferenz.calendar_permissions[0].rights == frozenset(
        {"ReadItems", "CreateItems", "FolderVisible"})
    assert konferenz.calendar_permissions[0].role is None
    ceo = state.customers["contoso"].resources["ceo-office@contoso.com"]
    assert ceo.permissions == ()  # managed, no grants
    assert ceo.calendar_permissions is None  # unmanaged


def test_groups_keep_a_source_per_owner_and_member(state) -> None:  # type: ignore[no-untyped-def]
    group = state.customers["contoso"].resources["london-all@contoso.com"]
    assert isinstance(group, DistributionGroup)
    assert group.owners == ("alice@contoso.com",)
    assert group.members == ("alice@contoso.com", "bob@contoso.com", "carol@contoso.com")
    file = str(EXAMPLE / "customers/contoso/sites/london/mailboxes.yaml")
    lines = Path(file).read_text().splitlines()
    owners = 1 + next(n for n, line in enumerate(lines)
                      if line.strip().startswith("owners: [alice@contoso.com]"))
    assert lines[owners - 3].strip() == "- name: London All"
    assert [s.line for s in group.owner_sources] == [owners]
    assert [s.line for s in group.member_sources] == [owners + 1] * 3
    assert group.owner_sources[0].file == file
    assert group.permissions == (AccessGrant("alice@contoso.com", frozenset({"SendAs"})),)


def test_templates(state) -> None:  # type: ignore[no-untyped-def]
    resources = state.customers["contoso"].resources
    alice = resources["alice@contoso.com"]
    assert isinstance(alice, UserMailbox)
    assert alice.template == "user_mailbox"  # applied without being named
    assert (alice.retention_policy, alice.archive) == ("Contoso 2y", True)
    assert alice.custom_attributes == ((1, "cost-centre-42"),)
    dave = resources["dave@contoso.com"]
    assert dave.template == "leaver"
    assert dave.convert_to == "shared"
    assert dave.retention_policy is None  # the leaver template, not user_mailbox
    assert dave.auto_reply is not None and dave.auto_reply.state == "Enabled"
    assert dave.auto_reply.internal_message.startswith("I have left Contoso")  # customer's own
    assert dave.forwarding == Forwarding(internal="bob@contoso.com", deliver_to_mailbox=True)


def test_auto_reply_timestamps_are_utc_text(state) -> None:  # type: ignore[no-untyped-def]
    pierre = state.customers["contoso"].resources["pierre@contoso.com"]
    assert pierre.auto_reply == AutoReply(
        state="Scheduled", start="2026-12-20T00:00:00Z", end="2027-01-04T00:00:00Z",
        internal_message="Absent jusqu'au 4 janvier.", external_audience="Known",
        external_message="Absent jusqu'au 4 janvier. Pour toute urgence, "
                         "accueil-paris@contoso.com.")


def test_omitted_settings_are_unmanaged(state) -> None:  # type: ignore[no-untyped-def]
    finance = state.customers["contoso"].resources["finance@contoso.com"]
    assert dict(finance.managed_settings()) == {
        "name": "Finance", "alias": "finance", "permissions": finance.permissions}
