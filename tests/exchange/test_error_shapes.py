"""Error type from the service's own words: x-ExceptionType, then the details' exception name
(a nested CmdletProxyException included), then innererror, then the HTTP status. The fake
service produces each shape; the connector reads each through real httpx over TLS."""

from __future__ import annotations

import dataclasses
import json

import httpx
import pytest

from reconciler.emulator.faults import ErrorShape, Fault, FaultKind, Phase
from reconciler.emulator.service import FakeExchangeService
from reconciler.live.backend import (
    AlreadyExists,
    AmbiguousWriteError,
    BadParameter,
    ErrorKind,
    ExchangeError,
    Forbidden,
    NotFound,
    NotPresent,
    TransientError,
)
from reconciler.live.exchange.errors import classify
from tests.exchange.conftest import APP_ID, FAST_RETRY, Pki, plain_client
from tests.exchange.tenants import TENANT_ID

NOT_FOUND_TYPE = "Microsoft.Exchange.Configuration.Tasks.ManagementObjectNotFoundException"
NOBODY = {"Identity": "nobody"}


# --- the shapes, as the fake service sends them ------------------------------------------------


def _post(service: FakeExchangeService, pki: Pki, cmdlet: str, **parameters: str
          ) -> httpx.Response:
    token = service.identity.issue_token(TENANT_ID, APP_ID, service.audience)
    body = json.dumps({"CmdletInput": {"CmdletName": cmdlet, "Parameters": parameters}})
    with plain_client(pki) as client:
        return client.post(f"{service.url}/adminapi/beta/{TENANT_ID}/InvokeCommand",
                           content=body, headers={"Authorization": f"Bearer {token}",
                                                  "X-AnchorMailbox": "APP:x",
                                                  "Content-Type": "application/json"})


def test_the_header_shape_names_the_type_only_in_x_exception_type(connect, pki: Pki) -> None:
    service, _, _ = connect(3, error_shapes={"Get-MailboxPermission": ErrorShape.HEADER})
    answer = _post(service, pki, "Get-MailboxPermission", Identity="nobody")
    assert answer.status_code == 400
    assert answer.headers["x-ExceptionType"] == "ManagementObjectNotFoundException"
    assert "Exception" not in answer.text and "couldn't be found" in answer.text


def test_the_proxy_shape_is_a_500_naming_the_inner_exception_in_its_text(connect,
                                                                        pki: Pki) -> None:
    service, _, _ = connect(3, error_shapes={"Get-MailboxPermission": ErrorShape.PROXY})
    answer = _post(service, pki, "Get-MailboxPermission", Identity="nobody")
    assert answer.status_code == 500
    error_id, wrapper, text = answer.json()["error"]["details"][0]["message"].split("|", 2)
    assert wrapper.endswith("CmdletProxyException") and error_id
    assert (f"Cmdlet error with following error message: {NOT_FOUND_TYPE}: The operation "
            "couldn't be performed") in text
    assert answer.json()["error"]["innererror"]["type"].endswith("CmdletProxyException")


def test_the_inner_only_shape_has_nothing_but_innererror(connect, pki: Pki) -> None:
    service, _, _ = connect(3)
    service.schedule.force(Fault(FaultKind.EXCHANGE_ERROR, shape=ErrorShape.INNER_ONLY))
    answer = _post(service, pki, "Get-Mailbox")
    assert answer.status_code == 500
    error = answer.json()["error"]
    assert "details" not in error and not error["message"]
    assert error["innererror"] == {"type": "Microsoft.Exchange.Data.Directory."
                                           "ADTransientException",
                                   "message": "The LDAP server is unavailable."}


def test_the_json_details_shape_holds_class_name_and_message(connect, pki: Pki) -> None:
    service, _, _ = connect(3, error_shape=ErrorShape.JSON_DETAILS)
    answer = _post(service, pki, "Get-MailboxPermission", Identity="nobody")
    detail = json.loads(answer.json()["error"]["details"][0]["message"])
    assert detail["ClassName"] == NOT_FOUND_TYPE and "couldn't be found" in detail["Message"]
    assert detail["localizedString"]["stringId"]


def test_the_empty_403_labelled_gzip_fault(connect, pki: Pki) -> None:
    service, _, _ = connect(3)
    service.schedule.force(Fault(FaultKind.EMPTY_GZIP_403))
    with plain_client(pki) as client:
        token = service.identity.issue_token(TENANT_ID, APP_ID, service.audience)
        request = client.build_request(
            "POST", f"{service.url}/adminapi/beta/{TENANT_ID}/InvokeCommand",
            content=b'{"CmdletInput":{"CmdletName":"Get-Mailbox"}}',
            headers={"Authorization": f"Bearer {token}", "X-AnchorMailbox": "APP:x"})
        answer = client.send(request, stream=True)
        raw = b"".join(answer.iter_raw())
    assert answer.status_code == 403 and answer.headers["Content-Encoding"] == "gzip"
    assert raw == b""


# --- the connector: permanent types are never retried, whatever the status ---------------------


@pytest.mark.parametrize("shape", list(ErrorShape))
def test_not_found_in_every_shape_is_not_found_and_asked_once(connect, shape: ErrorShape
                                                               ) -> None:
    service, _, backend = connect(3, error_shape=shape)
    with pytest.raises(NotFound) as raised:
        backend.invoke("Get-MailboxPermission", NOBODY)
    assert service.calls["Get-MailboxPermission"] == 1
    info = raised.value.info
    assert info.kind is ErrorKind.NOT_FOUND
    assert info.exception_type == "ManagementObjectNotFoundException"
    assert "nobody" in info.message and "[Server=" not in info.message
    assert info.status == (500 if shape in (ErrorShape.PROXY, ErrorShape.INNER_ONLY) else 400)


def test_a_proxied_not_found_on_a_write_is_not_found_not_in_doubt(connect) -> None:
    service, _, backend = connect(3, error_shapes={"Set-Mailbox": ErrorShape.PROXY})
    with pytest.raises(NotFound) as raised:
        backend.invoke("Set-Mailbox", {"Identity": "nobody", "Office": "Paris"})
    assert not isinstance(raised.value, AmbiguousWriteError)
    assert raised.value.status == 500 and service.calls["Set-Mailbox"] == 1


PERMANENT = [
    ("Microsoft.Exchange.Data.Directory.ProxyAddressExistsException", AlreadyExists),
    ("System.Management.Automation.ParameterBindingException", BadParameter),
    ("Microsoft.Exchange.Configuration.Authorization.AccessDeniedException", Forbidden),
    ("Microsoft.Exchange.Management.Tasks.MemberNotFoundException", NotPresent),
    (NOT_FOUND_TYPE, NotFound),
]


@pytest.mark.parametrize("shape", list(ErrorShape))
@pytest.mark.parametrize(("exception_type", "expected"), PERMANENT)
def test_permanent_inner_types_at_500_are_never_retried(connect, shape: ErrorShape,
                                                       exception_type: str,
                                                       expected: type[ExchangeError]) -> None:
    service, _, backend = connect(3)
    service.schedule.force(Fault(FaultKind.EXCHANGE_ERROR, exception_type=exception_type,
                                 shape=shape, status=500), cmdlet="Get-Mailbox", times=None)
    with pytest.raises(expected) as raised:
        backend.invoke("Get-Mailbox", {"ResultSize": "Unlimited"})
    assert type(raised.value) is expected
    assert raised.value.exception_type == exception_type.rsplit(".", 1)[-1]
    assert service.calls["Get-Mailbox"] == 1


# --- the connector: transient types are retried with backoff, whatever the status --------------

TRANSIENT = ["Microsoft.Exchange.Data.Directory.ADTransientException",
             "Microsoft.Exchange.Data.Directory.ADServerSettingsChangedException",
             "Microsoft.Exchange.Data.Directory.DCOverloadedException",
             "Microsoft.Exchange.Data.Storage.StorageTransientException",
             "Microsoft.Exchange.Data.Directory.SuitabilityDirectoryException",
             "Microsoft.Exchange.Data.ServerInMMException",
             "Microsoft.Exchange.Management.UnableToWriteToAadException",
             "Microsoft.Exchange.Data.ServerBusyException"]


@pytest.mark.parametrize("exception_type", TRANSIENT)
def test_transient_types_are_retried_even_at_400(connect, exception_type: str) -> None:
    service, emulator, backend = connect(3)
    waits: list[float] = []
    backend.gateway._sleep = waits.append
    service.schedule.force(Fault(FaultKind.EXCHANGE_ERROR, exception_type=exception_type,
                                 status=400), cmdlet="Get-Mailbox", times=2)
    value = backend.invoke("Get-Mailbox", {"ResultSize": "Unlimited"}).value
    assert value == emulator.invoke("Get-Mailbox", {"ResultSize": "Unlimited"}).value
    assert service.calls["Get-Mailbox"] == 3 and len(waits) == 2 and all(w > 0 for w in waits)


@pytest.mark.parametrize("shape", list(ErrorShape))
def test_a_transient_type_in_every_shape_gives_up_after_bounded_attempts(
        connect, shape: ErrorShape) -> None:
    service, _, backend = connect(3)
    service.schedule.force(Fault(FaultKind.EXCHANGE_ERROR, shape=shape), cmdlet="Get-Mailbox",
                           times=None)
    with pytest.raises(TransientError) as raised:
        backend.invoke("Get-Mailbox", {"ResultSize": "Unlimited"})
    assert raised.value.exception_type == "ADTransientException"
    assert raised.value.info.kind is ErrorKind.TRANSIENT and raised.value.info.kind.retryable
    assert service.calls["Get-Mailbox"] == backend.settings.retry.attempts


def test_a_transient_type_on_a_write_is_in_doubt_and_not_replayed(connect) -> None:
    service, _, backend = connect(3)
    service.schedule.force(Fault(FaultKind.EXCHANGE_ERROR, Phase.AFTER, status=400),
                           cmdlet="Set-Mailbox")
    with pytest.raises(AmbiguousWriteError) as raised:
        backend.invoke("Set-Mailbox", {"Identity": "mbx000001", "Office": "Paris"})
    assert raised.value.exception_type == "ADTransientException"
    assert raised.value.info.kind is ErrorKind.AMBIGUOUS
    assert service.calls["Set-Mailbox"] == 1 and service.commits["Set-Mailbox"] == 1


def test_the_concurrency_budget_answer_waits_and_retries(connect) -> None:
    service, _, backend = connect(3, settings={"retry": dataclasses.replace(
        FAST_RETRY, default_retry_after=0.01)})
    service.schedule.force(Fault(FaultKind.EXCHANGE_ERROR, exception_type="System.Exception",
                                 status=503, shape=ErrorShape.HEADER,
                                 message="You have reached the maximum number of concurrent "
                                         "requests per tenant. Please wait and try again."),
                           cmdlet="Set-Mailbox")
    backend.invoke("Set-Mailbox", {"Identity": "mbx000001", "Office": "Paris"})
    assert service.calls["Set-Mailbox"] == 2 and service.commits["Set-Mailbox"] == 1


# --- classification of raw answers -------------------------------------------------------------


def _body(**error: object) -> bytes:
    return json.dumps({"error": error}).encode()


def test_the_header_wins_over_the_details() -> None:
    info = classify(400, {"x-ExceptionType": "ProxyAddressExistsException"},
                    _body(message="x", details=[{"message": "ID|Microsoft.Foo.TaskException|"
                                                            "The proxy address is used."}]))
    assert (info.kind, info.exception_type) == (ErrorKind.ALREADY_EXISTS,
                                                 "ProxyAddressExistsException")


def test_a_wrapper_in_the_header_defers_to_the_inner_type() -> None:
    text = ("Error on proxy command 'Get-Mailbox' to server X: Proxy method PSWS: Cmdlet error "
            "with following error message: Microsoft.Exchange.Data.Directory."
            "ADServerSettingsChangedException: An error caused a change in the current set of "
            "domain controllers.. [Server=X,RequestId=1,TimeStamp=2]")
    info = classify(500, {"x-ExceptionType": "CmdletProxyException"},
                    _body(message="", details=[{"message": text}]))
    assert (info.kind, info.exception_type) == (ErrorKind.TRANSIENT,
                                                 "ADServerSettingsChangedException")
    assert info.message == ("An error caused a change in the current set of domain "
                            "controllers..")


def test_a_pipe_inside_the_text_is_kept() -> None:
    info = classify(400, {}, _body(message="m", details=[{
        "message": "E1|Microsoft.Exchange.Configuration.Tasks.ManagementObjectNotFoundException|"
                   "Object 'a|b' couldn't be found."}]))
    assert info.kind is ErrorKind.NOT_FOUND and info.message == "Object 'a|b' couldn't be found."
    assert info.error_id == "E1"


def test_internalexception_text_names_the_type() -> None:
    info = classify(500, {}, _body(message="", innererror={
        "type": "Microsoft.Exchange.Configuration.CmdletProxyException", "message": "",
        "internalexception": {"message": "Microsoft.Exchange.Data.Storage."
                                         "StorageTransientException: The store is busy."}}))
    assert (info.kind, info.exception_type) == (ErrorKind.TRANSIENT, "StorageTransientException")


def test_without_any_type_the_words_then_the_status_decide() -> None:
    assert classify(500, {}, _body(message="Object 'x' couldn't be found.")).kind is (
        ErrorKind.NOT_FOUND)
    assert classify(500, {}, b"").kind is ErrorKind.TRANSIENT
    assert classify(404, {}, b"").kind is ErrorKind.NOT_FOUND
    assert classify(400, {}, _body(message="Something odd.")).kind is ErrorKind.FAILED
    assert classify(429, {"x-ExceptionType": "ManagementObjectNotFoundException"},
                    b"").kind is ErrorKind.THROTTLED  # refused before processing


def test_unknown_types_of_known_families() -> None:
    assert classify(500, {"x-ExceptionType": "MapiTransientNetworkException"}, b"").kind is (
        ErrorKind.TRANSIENT)
    assert classify(500, {"x-ExceptionType": "ADOperationNotFoundException"}, b"").kind is (
        ErrorKind.NOT_FOUND)

