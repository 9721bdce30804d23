"""The fake Exchange Online service's fixtures, for the runs that sign in for real."""

from tests.exchange.conftest import app_cert, other_cert  # noqa: F401
