"""Scenarios: a room's booking goes through Get/Set-CalendarProcessing, while its
calendar_permissions keep meaning folder access."""

from __future__ import annotations

from reconciler.desired import load
from reconciler.errors import InputError
from tests.plan.conftest import Scenario, by_address, cmdlets

ROOM = "contoso/london/room_mailbox/board-room@contoso.com"


def processing(scenario: Scenario) -> dict[str, object]:
    (row,) = scenario.emulator.invoke("Get-CalendarProcessing",
                                      {"Identity": "board-room@contoso.com"}).value
    return row


def room(booking: str, calendar: str = "") -> str:
    return f"""\
        room_mailboxes:
          - name: Board Room
            alias: board-room
            booking:
{booking}
{calendar}
        """


DELEGATES = """\
              automate: AutoAccept
              delegates: [alice@contoso.com, bob@contoso.com]
              all_book_in_policy: false"""


def test_booking_delegates_on_a_new_room_receive_its_requests(scenario: Scenario) -> None:
    scenario.yaml("sites/london/rooms.yaml", room(DELEGATES))
    plan = scenario.converge()
    change = by_address(plan)[ROOM]
    assert cmdlets(change) == ["New-Mailbox", "Set-CalendarProcessing"]
    assert change.operations[1].parameters == {
        "Identity": "board-room@contoso.com", "AllBookInPolicy": False,
        "ResourceDelegates": ["alice@contoso.com", "bob@contoso.com"],
        "ForwardRequestsToDelegates": True, "AllRequestInPolicy": True}
    row = processing(scenario)
    assert (row["AutomateProcessing"], row["AllBookInPolicy"], row["AllRequestInPolicy"],
            row["ForwardRequestsToDelegates"]) == ("AutoAccept", False, True, True)
    assert sorted(row["ResourceDelegates"]) == ["alice", "bob"]


def test_booking_on_an_existing_room_changes_only_what_differs(scenario: Scenario) -> None:
    scenario.live("New-Mailbox", Room=True, Name="Board Room", Alias="board-room",
                  PrimarySmtpAddress="board-room@contoso.com")
    scenario.live("Set-CalendarProcessing", Identity="board-room", ResourceDelegates=["carol"],
                  AllRequestInPolicy=True)
    scenario.yaml("sites/london/rooms.yaml", room("""\
              delegates: [alice@contoso.com]
              automate: AutoAccept"""))
    change = by_address(scenario.converge())[ROOM]
    assert [op.parameters for op in change.operations] == [
        {"Identity": "board-room@contoso.com", "ResourceDelegates": ["alice@contoso.com"]}]
    assert change.before["booking"] == {"automate": "AutoAccept",
                                         "delegates": ["carol@contoso.com"],
                                         "delegates_receive_requests": True}
    # all_book_in_policy is left out: not managed, still Exchange's default.
    assert processing(scenario)["AllBookInPolicy"] is True


def test_a_rooms_calendar_permissions_stay_folder_access(scenario: Scenario) -> None:
    scenario.yaml("sites/london/rooms.yaml", room(DELEGATES, """\
            calendar_permissions:
              - {user: carol@contoso.com, role: Reviewer}"""))
    change = by_address(scenario.converge())[ROOM]
    assert cmdlets(change) == ["New-Mailbox", "Add-MailboxFolderPermission",
                               "Set-CalendarProcessing"]
    assert "carol" not in str(processing(scenario)["ResourceDelegates"])
    assert scenario.emulator.meeting_message_rule("board-room@contoso.com") == []


def test_delegates_need_automate_auto_accept(scenario: Scenario) -> None:
    scenario.yaml("sites/london/rooms.yaml", room("""\
              automate: AutoUpdate
              delegates: [alice@contoso.com]"""))
    try:
        load(scenario.write())
    except InputError as e:
        text = str(e)
    else:  # pragma: no cover - the assertion below reports it
        text = ""
    assert "rooms.yaml:5:" in text and "automate: AutoAccept" in text


def test_an_unknown_booking_delegate_is_a_plan_error_naming_the_line(
        scenario: Scenario) -> None:
    scenario.yaml("sites/london/rooms.yaml", room("""\
              automate: AutoAccept
              delegates: [alice@contoso.com, nobody@contoso.com]"""))
    try:
        scenario.plan()
    except InputError as e:
        text = str(e)
    else:  # pragma: no cover
        text = ""
    assert "nobody@contoso.com" in text and "rooms.yaml:6:" in text
