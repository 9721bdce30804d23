"""Pseudonyms: the same value gets the same pseudonym everywhere, in every shape it takes;
Exchange's own words stay readable; secrets are left out of every record."""

from __future__ import annotations

from reconciler.live.exchange.redact import Pseudonyms, scrub_secrets
from reconciler.live.exchange.trace import redact_record

TENANT = "6f1c1f2e-0000-4000-8000-000000000001"


def test_one_value_one_pseudonym_in_every_shape() -> None:
    p = Pseudonyms()
    row = p.value({"Name": "Support London", "Alias": "support-london",
                   "PrimarySmtpAddress": "Support-London@Contoso.com",
                   "EmailAddresses": ["SMTP:support-london@contoso.com",
                                      "smtp:support@contoso.co.uk"],
                   "ExternalDirectoryObjectId": TENANT.upper(), "Office": "London HQ"})
    assert row["Name"] == "W1 W2" and row["Alias"] == "w1-w2"
    assert row["PrimarySmtpAddress"] == "w1-w2@domain1.example"  # one address, one pseudonym
    assert row["EmailAddresses"] == ["SMTP:w1-w2@domain1.example", "smtp:w1@domain2.example"]
    assert row["ExternalDirectoryObjectId"] == p.guid(TENANT)  # case does not matter
    assert row["Office"] == "W2 W3"
    # Domains alone (accepted domains) map as in addresses; the initial domain keeps its kind.
    assert p.string("contoso.com", "DomainName") == "domain1.example"
    assert p.string("contoso.onmicrosoft.com", "DomainName") == "tenant1.onmicrosoft.com"
    assert p.name("Salle Lumière") == "W4 W5" and p.name("salle-lumiere") == "w4-w5"


def test_exchange_vocabulary_and_system_principals_stay() -> None:
    p = Pseudonyms()
    row = p.value({"User": "NT AUTHORITY\\SELF", "AccessRights": ["FullAccess"],
                   "RecipientTypeDetails": "SharedMailbox", "Trustee": "Default",
                   "SharingPermissionFlags": "Delegate,CanViewPrivateItems",
                   "ArchiveGuid": "00000000-0000-0000-0000-000000000000",
                   "StartTime": "2026-12-20T00:00:00Z", "Identity": "alice@contoso.com:\\Calendar"})
    assert row["User"] == "NT AUTHORITY\\SELF" and row["Trustee"] == "Default"
    assert row["AccessRights"] == ["FullAccess"] and row["RecipientTypeDetails"] == "SharedMailbox"
    assert row["SharingPermissionFlags"] == "Delegate,CanViewPrivateItems"
    assert row["ArchiveGuid"] == "00000000-0000-0000-0000-000000000000"
    assert row["StartTime"] == "2026-12-20T00:00:00Z"
    assert row["Identity"] == "w1@domain1.example:\\Calendar"
    # A localised folder is a name like any other: the same in an identity and on its own.
    assert p.name("bob@contoso.com:\\Kalender") == f"w2@domain1.example:\\{p.name('Kalender')}"


def test_messages_keep_exchange_wording_and_lose_the_tenant() -> None:
    p = Pseudonyms()
    detail = ("0x1|Microsoft.Exchange.Configuration.Tasks.ManagementObjectNotFoundException|"
              "The operation couldn't be performed because object 'Board Room' couldn't be "
              "found on 'EURPR01A001.prod.outlook.com'. Ask carol@contoso.com.")
    out = p.string(detail, "message")
    assert out.startswith("0x1|Microsoft.Exchange.Configuration.Tasks."
                          "ManagementObjectNotFoundException|The operation couldn't be")
    assert "'W1 W2'" in out and "carol" not in out and "contoso" not in out
    assert "Board" not in out and "EURPR01A001" not in out
    # An address in quotes is replaced once, by the pseudonym it has everywhere else.
    quoted = p.message("object 'gone@contoso.com' couldn't be found")
    assert quoted == f"object '{p.address('gone@contoso.com')}' couldn't be found"


def test_a_record_is_redacted_in_path_query_and_body_and_has_no_secret() -> None:
    p = Pseudonyms()
    record = scrub_secrets({
        "tenant": TENANT, "method": "POST", "path": f"/adminapi/beta/{TENANT}/InvokeCommand",
        "query": "$select=Name", "cmdlet": "New-Mailbox",
        "parameters": {"Name": "Sales", "Password": "hunter2-Secret"},
        "status": 200, "headers": {"Retry-After": "2"},
        "body": {"value": [], "@odata.nextLink":
                 f"https://outlook.office365.com/adminapi/beta/{TENANT}/InvokeCommand?x=1",
                 "note": "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"}})
    out = redact_record(record, p)
    fake = p.guid(TENANT)
    assert out["tenant"] == fake and out["path"] == f"/adminapi/beta/{fake}/InvokeCommand"
    assert out["body"]["@odata.nextLink"].startswith(f"https://outlook.office365.com/adminapi/"
                                                     f"beta/{fake}/")
    assert out["parameters"] == {"Name": "W1"} and out["headers"] == {"Retry-After": "2"}
    assert "eyJ" not in str(out) and "hunter2" not in str(out)


def test_a_diagnostics_header_keeps_exchange_words_and_loses_addresses() -> None:
    p = Pseudonyms()
    header = ('2000005;reason="The user alice@contoso.com is not assigned a role that allows '
              'running Get-Mailbox.";error_category="insufficient_permissions"')
    out = p.header(header)
    assert out == header.replace("alice@contoso.com", p.address("alice@contoso.com"))


def test_pseudonyms_survive_a_save_and_load(tmp_path) -> None:
    p = Pseudonyms()
    first = p.address("alice@contoso.com")
    p.save(tmp_path / "map.json")
    again = Pseudonyms.load(tmp_path / "map.json")
    assert again.address("alice@CONTOSO.com") == first
    assert again.address("Alice@contoso.com") == first  # an address is one, whatever its case
    assert again.originals()["domain1.example"] == "contoso.com"


def test_a_name_already_seen_is_redacted_where_a_message_writes_it_without_quotes(
        tmp_path) -> None:
    p = Pseudonyms()
    p.value({"DisplayName": "Alice Smith", "Alias": "asmith", "Name": "Sales Team"})
    out = p.message("Alice Smith is already a member of the group SALES TEAM (asmith).")
    assert out == (f"{p.name('Alice Smith')} is already a member of the group "
                   f"{p.name('SALES TEAM')} ({p.name('asmith')}).")
    assert "Alice" not in out and "Smith" not in out and "asmith" not in out
    # Only whole names: Exchange's own words around them stay, and a name inside a word is no
    # name ("Salesforce" is not "Sales Team").
    assert p.message("Salesforce is already a member.") == "Salesforce is already a member."
    # Remembered across a save and a load, as every pseudonym is.
    p.save(tmp_path / "p.json")
    again = Pseudonyms.load(tmp_path / "p.json")
    assert again.message("Alice Smith left") == f"{p.name('Alice Smith')} left"


def test_an_address_has_one_pseudonym_whatever_its_case() -> None:
    """Exchange compares addresses case-insensitively, and so does the plan: one address is
    one pseudonym, in a parameter, a body, an EmailAddresses entry and a forwarding target."""
    p = Pseudonyms()
    one = p.address("alice.smith@contoso.com")
    assert p.address("Alice.Smith@CONTOSO.com") == one
    assert p.value({"ForwardingSmtpAddress": "smtp:ALICE.SMITH@Contoso.com"}) == {
        "ForwardingSmtpAddress": f"smtp:{one}"}
    assert p.value(["SMTP:Alice.Smith@contoso.com"]) == [f"SMTP:{one}"]
    assert p.message("object 'Alice.Smith@contoso.com' couldn't be found") == (
        f"object '{one}' couldn't be found")
