"""validate checks addresses without a tenant: each must be an address, internal ones in a
domain of the customer, and a typo of an address declared in the repository gets a did-you-mean;
every problem of an entry is reported in one run, a template error included."""

from __future__ import annotations

from pathlib import Path

from reconciler.desired.addresses import Suggester

from .conftest import run_validate, write_repo

HQ = "customers/acme/sites/hq/mailboxes.yaml"
USERS = "customers/acme/sites/hq/users.yaml"
PEOPLE = ("user_mailboxes:\n  - user: alice@acme.com\n  - user: carol@acme.com\n"
          "  - user: bob@acme.com\n")


def _errors(tmp_path: Path, mailboxes: str) -> list[str]:
    root = write_repo(tmp_path / "repo", {USERS: PEOPLE, HQ: mailboxes})
    result = run_validate(root)
    assert result.exit_code == 1
    assert "Traceback" not in result.stderr
    return [f"{p['line']}: {p['message']}" for p in result.problems]


def test_owner_that_is_not_an_address_and_grantee_without_a_domain(tmp_path: Path) -> None:
    errors = _errors(tmp_path, """\
distribution_groups:
  - name: Team
    owners: [alice.acme.com]
    members: [bob@acme.com]
shared_mailboxes:
  - name: Desk
    permissions:
      - {user: carol@acme, access: [FullAccess]}
""")
    assert errors == [
        "3: the owner 'alice.acme.com' is not an email address (name@domain.tld); "
        "did you mean alice@acme.com?",
        "8: the grantee 'carol@acme' is not an email address (name@domain.tld); "
        "did you mean carol@acme.com?"]


def test_an_address_holding_a_control_character_is_not_an_address(tmp_path: Path) -> None:
    errors = _errors(tmp_path, """\
shared_mailboxes:
  - name: Desk
    forwarding: {internal: "bob\\e[2K@acme.com"}
    permissions:
      - {user: "carol\\x7f@acme.com", access: [FullAccess]}
      - {user: "alice@acme\\u009b.com", access: [SendAs]}
""")
    assert [e.partition(":")[0] for e in errors] == ["3", "5", "6"], errors
    assert all("is not an email address" in e for e in errors), errors
    assert "bob\x1b[2K@acme.com" in errors[0]  # JSON output: the data itself


def test_an_address_outside_the_customers_domains_is_an_error(tmp_path: Path) -> None:
    errors = _errors(tmp_path, """\
shared_mailboxes:
  - name: Desk
    forwarding: {internal: bob@globex.com}
    permissions:
      - {user: carol@acme.onmicrosoft.com, access: [SendAs]}
  - name: Out
    forwarding: {external: help@partner.example}
    calendar_permissions:
      - {user: Default, role: Reviewer}
      - {user: bob@acme.co, role: Reviewer}
""")
    assert errors == [
        "3: the forwarding target bob@globex.com is not in a domain of this customer "
        "(acme.co.uk, acme.com, acme.onmicrosoft.com); use one of those, or add the domain to "
        "mail_domains in customer.yaml; did you mean bob@acme.com?",
        "10: the calendar grantee bob@acme.co is not in a domain of this customer "
        "(acme.co.uk, acme.com, acme.onmicrosoft.com); use one of those, or add the domain to "
        "mail_domains in customer.yaml; did you mean bob@acme.com?"]


def test_a_typo_of_a_declared_address_gets_a_did_you_mean_warning(tmp_path: Path) -> None:
    root = write_repo(tmp_path / "repo", {USERS: PEOPLE, HQ: """\
shared_mailboxes:
  - name: Desk
    permissions:
      - {user: caorl@acme.com, access: [SendAs]}
      - {user: dave@acme.com, access: [SendAs]}
"""})
    result = run_validate(root)
    assert result.exit_code == 0  # caorl may exist in the tenant: plan checks that
    assert (f"{root / HQ}:4:9: warning: the grantee caorl@acme.com is declared nowhere in this "
            "repository; did you mean carol@acme.com? (plan checks that it exists in the "
            "tenant)") in result.stderr
    assert "dave@acme.com" not in result.stderr  # nothing declared is close to it


def test_a_template_error_does_not_hide_the_entrys_other_errors(tmp_path: Path) -> None:
    errors = _errors(tmp_path, """\
shared_mailboxes:
  - name: Desk
    template: nosuch
    permissions:
      - {user: alice.acme.com, access: [FullAccess]}
      - {user: bob@acme.com, access: [SendAs]}
      - {user: bob@acme.com, access: [FullAccess]}
""")
    assert [e.split(":")[0] for e in errors] == ["3", "5", "7"]
    assert "unknown template 'nosuch'" in errors[0]
    assert "'alice.acme.com' is not an email address" in errors[1]
    assert "bob@acme.com appears twice in permissions" in errors[2]


def test_suggestions_are_one_edit_away_within_a_domain() -> None:
    suggest = Suggester(["carol@acme.com", "alice@acme.com", "hans@fabrikam.de"])
    assert suggest("caorl@acme.com") == "carol@acme.com"     # two letters swapped
    assert suggest("carl@acme.com") == "carol@acme.com"      # one missing
    assert suggest("caroll@acme.com") == "carol@acme.com"    # one extra
    assert suggest("marie@acme.com") is None                 # another name
    assert suggest("carol@acme.com") is None                 # declared: nothing to suggest
    assert suggest("hans@acme.com") is None                  # another domain's hans
    assert suggest("hans.fabrikam.de") == "hans@fabrikam.de"  # malformed: by name
