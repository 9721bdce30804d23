"""Adding entries to a resource file as text: where they go, and what must stay untouched."""

from __future__ import annotations

import pytest

from reconciler.adopt.yamlout import append_entries, dump
from reconciler.errors import ReconcilerError

FILE = """\
# Paris rooms and mailboxes.
site: paris

shared_mailboxes:
    # indented four, as some people write
    - name: Accueil   # front desk
      alias: accueil

# Rooms come next; this comment introduces them.
room_mailboxes:
  - name: Salle A
"""


def test_entries_go_at_the_end_of_their_list_in_its_indentation() -> None:
    out = append_entries(FILE, {"shared_mailboxes": [{"name": "Ventes", "alias": "ventes",
                                                      "permissions": []}],
                                "room_mailboxes": [{"name": "Salle B", "capacity": 4}]})
    assert out == FILE.replace(
        "      alias: accueil\n",
        "      alias: accueil\n"
        "    - name: Ventes\n      alias: ventes\n      permissions: []\n").replace(
        "  - name: Salle A\n", "  - name: Salle A\n  - name: Salle B\n    capacity: 4\n")


def test_a_missing_list_is_added_at_the_end() -> None:
    out = append_entries(FILE.rstrip("\n"), {"distribution_groups": [
        {"name": "Paris All", "owners": ["a@contoso.com"], "members": ["a@contoso.com"]}]})
    assert out.startswith(FILE)
    assert out.endswith("\ndistribution_groups:\n  - name: Paris All\n"
                        "    owners: [a@contoso.com]\n    members: [a@contoso.com]\n")


def test_a_flow_list_is_refused_with_advice() -> None:
    with pytest.raises(ReconcilerError, match="block list"):
        append_entries("shared_mailboxes: [{name: A}]\n", {"shared_mailboxes": [{"name": "B"}]})


def test_text_that_needs_quotes_is_quoted() -> None:
    text = dump({"shared_mailboxes": [{"name": "Support: London #1", "auto_reply": {
        "state": "Enabled", "internal_message": "Back on 4 January: 'urgent' -> call"}}]})
    assert "name: 'Support: London #1'" in text
    import yaml

    data = yaml.safe_load(text)
    assert data["shared_mailboxes"][0]["auto_reply"]["internal_message"] == (
        "Back on 4 January: 'urgent' -> call")
