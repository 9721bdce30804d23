"""Microsoft's clouds and where Exchange Online lives in each (docs/exchange.md §5).

``tenant.cloud`` names one; it fills the REST base (``exchange_url``), the sign-in authority
(``authority_host``) and the token audience. The audience is the cloud's Exchange resource,
never a configured URL: a proxy or a tenant-specific host in front of Exchange must not change
what the token is for. ``tenant.exchange_resource`` overrides it.

Documented: every REST base, every authority, the Commercial audience, and the PowerShell
connection hosts (kept here for the docs and for errors naming them). Inferred: the GCC High and
DoD audiences (the REST base host, as peers use it). A guess: the 21Vianet audience.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

DEFAULT_CLOUD = "commercial"


@dataclass(frozen=True, slots=True)
class Cloud:
    name: str
    label: str
    rest_base: str  # where /adminapi/beta/<tenant>/InvokeCommand is served
    authority_host: str  # Entra sign-in
    resource: str  # the token audience: <resource>/.default
    connection_uri: str  # Connect-ExchangeOnline -ConnectionUri (not used by the REST client)
    resource_is: str  # documented | inferred | guess


COMMERCIAL = Cloud("commercial", "Commercial", "https://outlook.office365.com",
                   "https://login.microsoftonline.com", "https://outlook.office365.com",
                   "https://outlook.office365.com/powershell-liveid/", "documented")
CLOUDS: dict[str, Cloud] = {cloud.name: cloud for cloud in (
    COMMERCIAL,
    replace(COMMERCIAL, name="gcc", label="GCC"),  # GCC is served by the commercial hosts
    Cloud("gcc_high", "GCC High", "https://outlook.office365.us",
          "https://login.microsoftonline.us", "https://outlook.office365.us",
          "https://outlook.office365.us/powershell-liveID", "inferred"),
    Cloud("dod", "DoD", "https://outlook-dod.office365.us",
          "https://login.microsoftonline.us", "https://outlook-dod.office365.us",
          "https://webmail.apps.mil/powershell-liveID", "inferred"),
    Cloud("china", "21Vianet (China)", "https://outlook.office365.cn",
          "https://login.partner.microsoftonline.cn", "https://partner.outlook.cn",
          "https://partner.outlook.cn/PowerShell", "guess"),
)}


def cloud_named(name: str | None) -> Cloud:
    """The cloud ``tenant.cloud`` names (Commercial when unset)."""
    key = (name or DEFAULT_CLOUD).strip().lower().replace("-", "_").replace(" ", "_")
    try:
        return CLOUDS[key]
    except KeyError:
        raise ValueError(f"unknown cloud {name!r} (known: {', '.join(CLOUDS)})") from None


def audience(resource: str) -> str:
    """A resource as the token audience: no trailing slash, no ``/.default``."""
    resource = resource.strip().rstrip("/")
    if resource.endswith("/.default"):
        resource = resource[: -len("/.default")]
    return resource.rstrip("/")
