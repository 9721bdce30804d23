"""Secrets by reference only, and only from places no other program reads."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from reconciler.live.backend import AuthenticationError
from reconciler.live.exchange.auth import client_credential, read_secret
from reconciler.model import Tenant
from tests.hostile.harness import assert_clean, every_command, example_repo, run, tree_digest

CUSTOMER = "customers/contoso/customer.yaml"
REFUSED = ["PYTHONWARNINGS", "PYTHONSTARTUP", "LD_PRELOAD", "DYLD_INSERT_LIBRARIES", "PATH",
           "HOME", "SSL_CERT_FILE", "SSLKEYLOGFILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE",
           "HTTPS_PROXY", "ALL_PROXY", "GIT_ASKPASS", "GITHUB_TOKEN", "RUNNER_TEMP",
           "ACTIONS_STEP_DEBUG", "CI", "RECONCILER_GC", "NETRC", "CURL_HOME", "WGETRC",
           "GNUPGHOME", "SSH_AUTH_SOCK", "GCM_INTERACTIVE"]
MALFORMED_PEM = "-----BEGIN PRIVATE KEY-----\nTOPSECRETNOTBASE64!!\n-----END PRIVATE KEY-----\n"


def _with_key(tmp_path: Path, reference: str) -> Path:
    repo = example_repo(tmp_path)
    path = repo / CUSTOMER
    path.write_text(path.read_text().replace("env:CONTOSO_EXO_KEY", reference))
    return repo


def _line_of(repo: Path, needle: str) -> int:
    lines = (repo / CUSTOMER).read_text().splitlines()
    return next(i for i, line in enumerate(lines, start=1) if needle in line)


@pytest.mark.parametrize("name", [*REFUSED, "contoso_key", "Contoso"])
def test_a_variable_another_program_reads_is_refused(tmp_path: Path, name: str) -> None:
    repo = _with_key(tmp_path, f"env:{name}")
    before = tree_digest(repo)
    for result in every_command(repo, tmp_path / "plan.json"):
        assert result.exit_code == 1, result.output
        assert_clean(result)
        if result.args[-2:] != ["--format", "json"]:
            assert f"customer.yaml:{_line_of(repo, 'certificate_key')}:" in result.output
            assert name in result.output
    assert tree_digest(repo) == before and not (tmp_path / "plan.json").exists()


def test_a_variable_of_the_customers_own_passes(tmp_path: Path) -> None:
    assert run(["validate", str(_with_key(tmp_path, "env:CONTOSO_EXO_KEY_2"))]).exit_code == 0


def test_file_references_are_repository_relative_regular_files(tmp_path: Path) -> None:
    repo = _with_key(tmp_path, "file:keys/contoso.pem")
    assert run(["validate", str(repo)]).exit_code == 0  # absent here: it lives where apply runs
    (repo / "keys").mkdir()
    os.mkfifo(repo / "keys" / "contoso.pem")
    result = run(["validate", str(repo)])
    assert result.exit_code == 1
    assert "keys/contoso.pem is not a regular file" in result.stderr
    os.unlink(repo / "keys" / "contoso.pem")
    (repo / "keys" / "contoso.pem").mkdir()
    assert run(["validate", str(repo)]).exit_code == 1


@pytest.mark.parametrize("reference", ["file:../outside.pem", "file:keys/../../outside.pem",
                                       "file:keys/link.pem"])
def test_a_relative_file_reference_leaving_the_repository_is_an_error(
        tmp_path: Path, reference: str) -> None:
    repo = _with_key(tmp_path, reference)
    (tmp_path / "outside.pem").write_text("not a key")
    (repo / "keys").mkdir()
    (repo / "keys" / "link.pem").symlink_to(tmp_path / "outside.pem")
    result = run(["validate", str(repo)])
    assert result.exit_code == 1, result.output
    assert "leaves the repository" in result.stderr, result.stderr
    assert "not a key" not in result.output


def test_the_key_is_read_below_the_repository_not_the_working_directory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from reconciler.desired import load

    repo = _with_key(tmp_path, "file:keys/contoso.pem")
    monkeypatch.chdir(tmp_path)
    tenant = load(repo).customers["contoso"].customer.tenant
    assert tenant.certificate_key == f"file:{(repo / 'keys' / 'contoso.pem').resolve()}"


def test_a_fifo_or_device_is_never_read_as_a_key(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo")
    for target in (tmp_path / "fifo", Path("/dev/zero")):
        with pytest.raises(AuthenticationError, match="not a regular file"):
            read_secret(f"file:{target}", what="certificate_key")
    with pytest.raises(AuthenticationError, match="is read by another program"):
        read_secret("env:PYTHONWARNINGS", what="certificate_key")


def test_a_malformed_key_is_an_error_naming_its_source_not_the_key(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONTOSO_EXO_KEY", MALFORMED_PEM)
    tenant = Tenant(id="6f1c1f2e-0000-4000-8000-000000000001", initial_domain="c.example",
                    app_id="2b8c0000-0000-4000-8000-000000000002",
                    certificate_thumbprint="3F2A9C11223344556677889900AABBCCDDEEFF00",
                    certificate_key="env:CONTOSO_EXO_KEY")
    with pytest.raises(AuthenticationError) as caught:
        client_credential(tenant)
    assert "env:CONTOSO_EXO_KEY" in str(caught.value)
    assert "TOPSECRET" not in str(caught.value)


def test_a_malformed_key_through_plan_is_a_clear_error(tmp_path: Path) -> None:
    repo = example_repo(tmp_path)
    path = repo / CUSTOMER
    path.write_text(path.read_text().replace(
        "connection: sandbox",
        "connection: exchange\n    exchange_url: https://127.0.0.1:9/\n"
        "    authority_host: https://127.0.0.1:9/"))
    result = run(["plan", str(repo), "--customer", "contoso"],
                 {"CONTOSO_EXO_KEY": MALFORMED_PEM})
    assert result.exit_code == 1
    assert_clean(result)
    assert "env:CONTOSO_EXO_KEY" in result.stderr and "TOPSECRET" not in result.output
