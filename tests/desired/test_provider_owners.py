"""`owners` in reconciler.yaml: the provider's code owners, loaded into DesiredState.owners."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from reconciler.desired import load
from reconciler.errors import InputError
from tests.desired.conftest import run_validate, write_repo

MakeRepo = Callable[[dict[str, str | bytes | None]], Path]


def test_owners_are_loaded_in_the_order_declared(repo: MakeRepo) -> None:
    root = repo({"reconciler.yaml": "policy:\n  prune: false\n"
                                    "owners: ['@msp/platform', '@alice', 'noc@msp.example']\n"})
    assert load(root).owners == ("@msp/platform", "@alice", "noc@msp.example")


def test_no_owners_key_or_no_reconciler_yaml_means_none(repo: MakeRepo, tmp_path: Path) -> None:
    root = repo({"reconciler.yaml": "policy:\n  prune: false\n"})
    assert load(root).owners == ()
    # Without the file at all (the base repository has none).
    assert load(write_repo(tmp_path / "bare", {})).owners == ()


def test_provider_owners_do_not_become_customer_or_site_owners(repo: MakeRepo) -> None:
    # The provider's owners are only for the `*` rule; the model keeps each level's own.
    root = repo({"reconciler.yaml": "owners: ['@msp/platform']\n"})
    customer = load(root).customers["acme"].customer
    assert customer.owners == ()
    assert all(site.owners == () for site in customer.sites.values())


@pytest.mark.parametrize(("text", "line", "words"), [
    # A single owner written as text instead of a list.
    ("policy:\n  prune: false\nowners: '@msp/platform'\n", 3, ["owners", "list"]),
    # A list item that is no owner (a space, no @ or email form).
    ("owners:\n  - '@msp/platform'\n  - platform team\n", 3, ["owners[1]", "platform team"]),
    # A mapping where a list is wanted.
    ("owners:\n  team: '@msp/platform'\n", 2, ["owners"]),
], ids=["text", "not-an-owner", "mapping"])
def test_a_wrong_owners_value_is_reported_at_its_line(repo: MakeRepo, text: str, line: int,
                                                      words: list[str]) -> None:
    root = repo({"reconciler.yaml": text})
    result = run_validate(root)
    assert result.exit_code == 1, result.stderr
    [problem] = result.problems
    assert Path(str(problem["file"])).name == "reconciler.yaml"
    assert problem["line"] == line
    for word in words:
        assert word in str(problem["message"]), problem
    assert f"reconciler.yaml:{line}:" in result.stderr
    with pytest.raises(InputError):
        load(root)
