from reconciler.model import (
    AccessGrant,
    CalendarGrant,
    Location,
    ResourceType,
    SharedMailbox,
    SourceRef,
)


def test_source_positions_do_not_take_part_in_equality() -> None:
    a = SharedMailbox(id="x@contoso.com", located_at=Location("contoso", "london"),
                      source=SourceRef("a.yaml", 1, 1))
    b = SharedMailbox(id="x@contoso.com", located_at=Location("contoso", "london"),
                      source=SourceRef("b.yaml", 9, 3))
    assert a == b


def test_address_uses_dash_for_customer_level() -> None:
    r = SharedMailbox(id="x@contoso.com", located_at=Location("contoso"))
    assert r.address == "contoso/-/shared_mailbox/x@contoso.com"


def test_managed_settings_skip_unmanaged_and_identity() -> None:
    grant = AccessGrant(user="bob@contoso.com", access=frozenset({"SendAs"}))
    r = SharedMailbox(id="x@contoso.com", located_at=Location("c"), name="X",
                      permissions=(grant,))
    assert dict(r.managed_settings()) == {"name": "X", "permissions": (grant,)}


def test_calendar_grant_flags() -> None:
    assert CalendarGrant("a", role="Editor", delegate=True).sharing_permission_flags == "Delegate"
    g = CalendarGrant("a", role="Editor", delegate=True, private_items=True)
    assert g.sharing_permission_flags == "Delegate,CanViewPrivateItems"
    assert CalendarGrant("a", rights=frozenset({"ReadItems", "CreateItems"})).access_rights == [
        "CreateItems", "ReadItems"]


def test_yaml_keys() -> None:
    assert [t.yaml_key for t in ResourceType] == [
        "user_mailboxes", "shared_mailboxes", "room_mailboxes", "distribution_groups"]
