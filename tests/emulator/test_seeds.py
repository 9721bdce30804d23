"""The example repository's seeds do their job: a newcomer's first plan against the sandbox
shows every kind of change, is accepted, and the plan after applying it is empty."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from reconciler.emulator import Emulator
from reconciler.plan.planner import make_plan
from tests.emulator.conftest import REPO, SEEDS

EXAMPLE = REPO / "examples" / "desired-state"
SELF = "NT AUTHORITY\\SELF"


@pytest.fixture
def example(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    shutil.copytree(EXAMPLE, root, ignore=shutil.ignore_patterns(".reconciler"))
    return root


def test_first_plan_shows_a_realistic_mix_and_is_accepted(example: Path) -> None:
    plan = make_plan(example, live_source="sandbox").plan
    assert plan.refusals == []
    actions = {c.address: c.action for c in plan.changes}
    assert actions["contoso/london/shared_mailbox/sales-london@contoso.com"] == "create"
    assert actions["contoso/paris/room_mailbox/salle-lumiere@contoso.com"] == "create"
    assert actions["contoso/london/shared_mailbox/support-london@contoso.com"] == "update"
    assert actions["contoso/london/room_mailbox/board-room-3@contoso.com"] == "update"
    assert actions["contoso/-/shared_mailbox/ceo-office@contoso.com"] == "update"
    assert actions["contoso/london/shared_mailbox/finance@contoso.com"] == "move"
    assert actions["contoso/-/shared_mailbox/old-projects@contoso.com"] == "unmanaged"
    assert actions["contoso/-/room_mailbox/old-room@contoso.com"] == "unmanaged"
    assert actions["fabrikam/-/shared_mailbox/fabrikam-archive@fabrikam.de"] == "delete"
    assert actions["fabrikam/hamburg/room_mailbox/konferenz-hamburg@fabrikam.de"] == "create"
    assert actions["fabrikam/berlin/distribution_group/team-berlin@fabrikam.de"] == "create"
    assert "contoso/paris/shared_mailbox/accueil-paris@contoso.com" not in actions
    # fabrikam prunes, but its room list and mail-enabled security group are not its groups.
    assert not [a for a in actions if "rooms@fabrikam.de" in a or "it-admins@" in a]


def test_seeds_carry_exchange_noise() -> None:
    for path in sorted(SEEDS.glob("*.json")):
        snap = json.loads(path.read_text("utf-8"))
        em = Emulator(snap)
        for mailbox in snap["mailboxes"]:
            users = {p["User"] for p in snap["mailbox_permissions"]
                     if p["Identity"] == mailbox["Identity"]}
            assert SELF in users and "NAMPR01A001\\Administrator" in users
        names = [r["Name"] for r in snap["recipients"]]
        assert any(n == r["ExternalDirectoryObjectId"] for n, r in zip(names, snap["recipients"],
                                                                       strict=True))
        assert em.to_snapshot() == snap, f"{path.name} is not in the emulator's own order"
