"""-Filter on Get-Recipient, Get-Mailbox and Get-DistributionGroup: the OPATH the targeted reads
of a pull request's plan send, answered as Exchange answers it."""

from __future__ import annotations

from typing import Any

import pytest

from reconciler.emulator import Emulator, check_call
from reconciler.live.backend import BadParameter
from reconciler.live.targeted import address_filter, quote
from tests.emulator.conftest import seed


def addresses(em: Emulator, cmdlet: str, text: str) -> list[str]:
    params: dict[str, Any] = {"Filter": text, "ResultSize": "Unlimited"}
    check_call(cmdlet, params)  # the reference documents -Filter on each of these
    return sorted(r["PrimarySmtpAddress"] for r in em.invoke(cmdlet, params).value)


def test_email_addresses_match_any_address_of_a_recipient() -> None:
    snapshot = seed()
    for row in snapshot["recipients"] + snapshot["mailboxes"]:
        if row.get("PrimarySmtpAddress") == "dave@contoso.com":
            row["EmailAddresses"] = ["SMTP:dave@contoso.com", "smtp:david@contoso.com"]
    em = Emulator(snapshot)
    found = addresses(em, "Get-Recipient", address_filter(
        ["DAVID@contoso.com", "nobody@contoso.com"], ("EmailAddresses",)))
    assert found == ["dave@contoso.com"]
    assert addresses(em, "Get-Mailbox", "EmailAddresses -eq 'david@contoso.com'") == [
        "dave@contoso.com"]


def test_terms_combine_with_or_and_not(em: Emulator) -> None:
    everyone = addresses(em, "Get-Recipient", "EmailAddresses -ne 'x@y'")
    assert len(everyone) > 2
    both = addresses(em, "Get-Recipient", "(PrimarySmtpAddress -eq 'dave@contoso.com') -or "
                                          "(PrimarySmtpAddress -eq 'carol@contoso.com')")
    assert both == ["carol@contoso.com", "dave@contoso.com"]
    assert addresses(em, "Get-Recipient", "-not (EmailAddresses -ne 'dave@contoso.com') -and "
                                          "(Alias -eq 'dave')") == ["dave@contoso.com"]


def test_a_quote_in_a_value_is_doubled() -> None:
    assert quote("o'neil@contoso.com") == "'o''neil@contoso.com'"


@pytest.mark.parametrize("text", ["EmailAddresses -like 'd*'", "(Alias -eq 'x'",
                                  "Alias -eq", "Alias 'x'"])
def test_a_filter_it_cannot_parse_is_refused(em: Emulator, text: str) -> None:
    with pytest.raises(BadParameter, match="Filter"):
        em.invoke("Get-Recipient", {"Filter": text})


@pytest.mark.parametrize("prop", ["EmailAddresses", "PrimarySmtpAddress", "Name", "Alias",
                                  "DisplayName"])
def test_an_equality_filter_answers_from_the_index_as_a_scan_would(em: Emulator,
                                                                   prop: str) -> None:
    everyone = em.invoke("Get-Recipient", {"ResultSize": "Unlimited"}).value
    values = [str(r[prop][0] if isinstance(r[prop], list) else r[prop])
              for r in everyone[:3] if r.get(prop)]
    assert values
    indexed = address_filter(values, (prop,))  # -eq terms joined by -or: an index lookup
    scanned = "-not (" + " -and ".join(f"({prop} -ne {quote(v)})" for v in values) + ")"
    assert addresses(em, "Get-Recipient", indexed) == addresses(em, "Get-Recipient", scanned)
    assert len(addresses(em, "Get-Recipient", indexed)) >= len(set(values))
