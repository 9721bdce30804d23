"""Model values from small repositories: identities, templates, forwarding, timestamps."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from reconciler.desired import derive_alias, load
from reconciler.errors import InputError
from reconciler.model import Forwarding

HQ = "customers/acme/sites/hq/mailboxes.yaml"
Repo = Callable[[dict[str, str | bytes | None]], Path]


@pytest.mark.parametrize(("name", "alias"), [
    ("Support London", "support-london"),
    ("Salle Lumière", "salle-lumiere"),
    ("  Sales & Marketing  ", "sales-marketing"),
    ("R&D / Lab #2", "r-d-lab-2"),
    ("Team..A", "team.a"),
    (".Hidden.", "hidden"),
    ("***", ""),
])
def test_derive_alias(name: str, alias: str) -> None:
    assert derive_alias(name) == alias


def test_identity_uses_alias_and_default_domain(repo: Repo) -> None:
    root = repo({HQ: "shared_mailboxes:\n"
                     "  - name: Help Desk\n"
                     "  - name: Other\n    alias: Other.Box\n    domain: ACME.co.uk\n"
                     "user_mailboxes:\n  - user: Ann.Lee@Acme.com\n"})
    resources = load(root).customers["acme"].resources
    assert set(resources) == {"help-desk@acme.com", "other.box@acme.co.uk", "ann.lee@acme.com"}
    assert resources["other.box@acme.co.uk"].alias == "other.box"
    assert resources["other.box@acme.co.uk"].name == "Other"


def test_forwarding_none_and_external(repo: Repo) -> None:
    root = repo({HQ: "shared_mailboxes:\n"
                     "  - name: A\n    forwarding: none\n"
                     "  - name: B\n    forwarding: {external: x@example.org}\n"})
    resources = load(root).customers["acme"].resources
    assert resources["a@acme.com"].forwarding == Forwarding()
    assert resources["a@acme.com"].forwarding.is_none
    assert resources["b@acme.com"].forwarding == Forwarding(external="x@example.org")


@pytest.mark.parametrize(("written", "utc"), [
    ("2026-12-20T00:00:00Z", "2026-12-20T00:00:00Z"),
    ("2026-12-20T01:30:00+01:00", "2026-12-20T00:30:00Z"),
    ("'2026-12-20T01:30:00+01:00'", "2026-12-20T00:30:00Z"),
    ("2026-12-20 08:00:00 -05:00", "2026-12-20T13:00:00Z"),
    ("2026-12-20T00:00:00.5Z", "2026-12-20T00:00:00Z"),
])
def test_timestamps_become_utc_text(repo: Repo, written: str, utc: str) -> None:
    root = repo({HQ: "user_mailboxes:\n  - user: a@acme.com\n    auto_reply:\n"
                     f"      state: Scheduled\n      start: {written}\n"
                     "      end: 2030-01-01T00:00:00Z\n"})
    auto_reply = load(root).customers["acme"].resources["a@acme.com"].auto_reply
    assert auto_reply is not None
    assert auto_reply.start == utc
    assert auto_reply.end == "2030-01-01T00:00:00Z"
    assert auto_reply.internal_message is None


def test_provider_templates_and_customer_override(repo: Repo) -> None:
    root = repo({
        "reconciler.yaml": "templates:\n  user_mailbox: {archive: false, retention_policy: P}\n"
                           "  room: {capacity: 4}\npolicy: {max_deletes: 9, prune: true}\n",
        HQ: "user_mailboxes:\n  - user: a@acme.com\n  - user: b@acme.com\n    archive: true\n"
            "room_mailboxes:\n  - name: R\n    template: room\n",
    })
    state = load(root).customers["acme"]
    a, b = state.resources["a@acme.com"], state.resources["b@acme.com"]
    assert (a.archive, a.retention_policy) == (False, "P")
    assert (b.archive, b.retention_policy) == (True, "P")  # its own value wins
    assert state.resources["r@acme.com"].capacity == 4
    assert state.customer.policy.max_deletes == 9
    assert state.customer.policy.prune is True
    # the customer's own `leaver` stays, and the provider's templates join it
    assert set(state.customer.templates) == {"leaver", "user_mailbox", "room"}


def test_a_template_list_keeps_positions_in_the_template(repo: Repo) -> None:
    root = repo({
        "reconciler.yaml": "templates:\n  team:\n    permissions:\n"
                           "      - {user: boss@acme.com, access: [FullAccess]}\n",
        HQ: "shared_mailboxes:\n  - name: A\n    template: team\n",
    })
    grant = load(root).customers["acme"].resources["a@acme.com"].permissions[0]
    assert grant.source is not None
    assert (Path(grant.source.file).name, grant.source.line) == ("reconciler.yaml", 4)


def test_errors_are_collected_with_their_positions(repo: Repo) -> None:
    root = repo({HQ: "shared_mailboxes:\n  - name: A\n    domain: other.org\n"
                     "  - name: B\n    forwarding: {internal: x@acme.com, external: y@x.org}\n"})
    with pytest.raises(InputError) as info:
        load(root)
    lines = [(p.source.line, p.source.column) for p in info.value.problems if p.source]
    assert lines == [(3, 13), (5, 17)]


def test_resources_of_a_site_without_site_yaml_are_still_schema_checked(repo: Repo) -> None:
    root = repo({"customers/acme/sites/hq/site.yaml": None,
                 HQ: "shared_mailboxes:\n  - nam: A\n"})
    with pytest.raises(InputError) as info:
        load(root)
    messages = " | ".join(p.message for p in info.value.problems)
    assert "no site.yaml" in messages
    assert "did you mean 'name'" in messages
