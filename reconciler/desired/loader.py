"""Loading a desired-state repository (docs/format.md §1-7) into the model.

Every file is read and checked against its schema, then for meaning; every problem found in any
file is collected and raised together in one :class:`InputError`, so a pull request's author
sees all of their mistakes in one run.
"""

from __future__ import annotations

import datetime as dt
import difflib
import gc
import os
import re
import stat
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from reconciler import secretref
from reconciler.errors import InputError, Problem
from reconciler.model import (
    AccessGrant,
    AutoReply,
    Booking,
    CalendarGrant,
    Customer,
    CustomerState,
    DesiredState,
    DistributionGroup,
    Forwarding,
    Location,
    Policy,
    Resource,
    ResourceType,
    RoomMailbox,
    SharedMailbox,
    Site,
    SourceRef,
    Tenant,
    UserMailbox,
)

from .addresses import Reference, Suggester, references
from .addresses import problem as address_problem
from .ahead import Ahead, Job, may_help, workers_for
from .cache import ParseCache
from .schema import raw_schemas, schema_problems
from .yamlfile import YamlDocument, YamlError, parse_yaml, read_bytes

ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]*$")
YAML_SUFFIXES = (".yaml", ".yml")
SETTINGS_FILE = "reconciler.yaml"
DEFAULT_TEMPLATE = "user_mailbox"
# All YAML files of a repository together (each file on its own: yamlfile.MAX_FILE_BYTES).
MAX_REPOSITORY_BYTES = 512 * 1024 * 1024

_ALIAS_DROP = re.compile(r"[^a-z0-9._-]+")
_DASHES = re.compile(r"-{2,}")
_DOTS = re.compile(r"\.{2,}")
# The years an auto-reply schedule may name (UNVERIFIED: Exchange documents no range; outside
# these the value is almost certainly a typing mistake).
MIN_AUTO_REPLY_YEAR, MAX_AUTO_REPLY_YEAR = 2000, 2099
_ZONE_SPACE = re.compile(r" (?=[Zz+-][0-9:]*$)")


def derive_alias(name: str) -> str:
    """The alias a shared mailbox, room or group gets from its name when it has none.

    Lower case, accents dropped; letters, digits, '.', '_' and '-' kept; every run of other
    characters (spaces included) becomes one '-'; dots and dashes trimmed from both ends.
    'Salle Lumière' gives 'salle-lumiere'. The result may be empty (a name of symbols only).
    """
    text = unicodedata.normalize("NFKD", name)
    text = "".join(c for c in text if not unicodedata.combining(c)).lower()
    text = _DOTS.sub(".", _DASHES.sub("-", _ALIAS_DROP.sub("-", text)))
    return text.strip(".-")


def load(path: str | Path, *, cache: ParseCache | None = None,
         meanwhile: Iterable[Callable[[], object]] = ()) -> DesiredState:
    """Load and check the repository at ``path``. Raises :class:`InputError` with every problem.

    With ``cache``, a file whose bytes were parsed and passed their schema before is taken from
    it (see :mod:`reconciler.desired.cache`); every other check runs as without. ``meanwhile``:
    work this process may do while it waits for the files parsed on other cores
    (:mod:`reconciler.desired.ahead`); none of it may be done."""
    # The loader allocates many small objects and no cycles worth collecting while it runs;
    # pausing the cyclic collector avoids rescanning everything already loaded, again and again.
    enabled = gc.isenabled()
    gc.disable()
    try:
        return _Loader(Path(path), cache or ParseCache(None), meanwhile).run()
    finally:
        if enabled:
            gc.enable()


# --- files of a repository ----------------------------------------------------------------------


def _no_customers(root: Path) -> str:
    where = "the current folder" if str(root) == "." else str(root)
    if (root / "reconciler.yaml").is_file():
        return (f"no customers/ folder in {where}: a repository holds "
                "customers/<customer>/customer.yaml for each customer (docs/format.md §1)")
    return (f"{where} is not in a provider repository: neither it nor any folder above it holds "
            "customers/ or reconciler.yaml. Run the command inside one, give its folder as PATH, "
            "or create one with `reconciler init DIR`")


@dataclass
class _CustomerFiles:
    id: str
    dir: Path
    customer_file: Path | None
    resource_files: list[tuple[str, Path]] = field(default_factory=list)  # (site or "-", file)
    site_files: dict[str, Path] = field(default_factory=dict)


def _yaml_files(directory: Path, skip: str) -> list[Path]:
    """The YAML files of a folder, whatever they are: the loader checks that each is a regular
    file inside the repository (a FIFO or a directory named x.yaml is not skipped silently)."""
    return sorted(
        p for p in directory.iterdir()
        if p.suffix in YAML_SUFFIXES and not p.name.startswith(".") and p.stem != skip
    )


def _named(directory: Path, stem: str) -> Path | None:
    for suffix in YAML_SUFFIXES:
        candidate = directory / f"{stem}{suffix}"
        if os.path.lexists(candidate):
            return candidate
    return None


class _Loader:
    def __init__(self, root: Path, cache: ParseCache,
                 meanwhile: Iterable[Callable[[], object]] = ()) -> None:
        self.root = root
        self.cache = cache
        self.cache_entries: list[tuple[str, bytes]] = []
        self.ahead: Ahead | None = None  # files parsed ahead on other cores (desired.ahead)
        self.meanwhile = meanwhile
        self.real_root = Path(os.path.realpath(root))
        self.total_bytes = 0
        self.over_total = False
        self.problems: list[Problem] = []
        self.state = DesiredState(root=str(root))
        self.provider_doc: YamlDocument | None = None
        # id(template mapping) -> the document it was written in, for positions inside it
        self.template_docs: dict[int, YamlDocument] = {}
        self.properties = {
            t: frozenset(raw_schemas()["resources.schema.json"]["$defs"][t.value]["properties"])
            for t in ResourceType
        }
        # Addresses (docs/format.md §4): every identity declared, problems waiting for a
        # did-you-mean (their index in problems), and references that are fine on their own.
        self.declared: set[str] = set()
        self.address_problems: list[tuple[int, Reference]] = []
        self.references: list[Reference] = []

    def check_addresses(self, resource: Resource, domains: frozenset[str],
                        fine: set[tuple[str, bool]]) -> None:
        """Declare ``resource`` and check the addresses it names; ``fine`` remembers the
        references of this customer already found fine on their own."""
        self.declared.add(resource.id)
        for ref in references(resource):
            key = (ref.address, ref.internal)
            if key in fine:
                self.references.append(ref)
                continue
            message = address_problem(ref, domains)
            if message is None:
                fine.add(key)
                self.references.append(ref)
            else:
                self.address_problems.append((len(self.problems), ref))
                self.problem(message, ref.source)

    def suggest_addresses(self) -> None:
        """Did-you-mean hints, once every address of the repository is known; a reference
        declared nowhere but close to a declared address is a warning (it may still exist in
        the tenant, which plan checks)."""
        suggester = Suggester(self.declared)
        hints: dict[str, str | None] = {}  # a grantee is named again and again

        def suggestion(address: str) -> str | None:
            key = address.lower()
            if key not in hints:
                hints[key] = suggester(address)
            return hints[key]

        for index, ref in self.address_problems:
            hint = suggestion(ref.address)
            if hint:
                old = self.problems[index]
                self.problems[index] = Problem(f"{old.message}; did you mean {hint}?",
                                               old.source)
        declared = self.declared
        for ref in self.references:
            if not ref.internal:
                continue
            key = ref.address.lower()
            if key in declared:
                continue
            hint = hints[key] if key in hints else suggestion(ref.address)
            if hint:
                self.state.warnings.append(Problem(
                    f"the {ref.role} {ref.address} is declared nowhere in this repository; "
                    f"did you mean {hint}? (plan checks that it exists in the tenant)",
                    ref.source))

    # -- helpers --

    def display(self, path: Path) -> str:
        return str(path)

    def problem(self, message: str, source: SourceRef | None) -> None:
        self.problems.append(Problem(message, source))

    def at_file(self, path: Path) -> SourceRef:
        return SourceRef(self.display(path), 1, 1)

    def inside(self, path: Path) -> bool:
        """Whether ``path``, links followed, stays inside the repository: the repository is a
        closed world, and a link out of it (to /etc/shadow, to another checkout) is an error
        named here, never followed."""
        if self.contains(Path(os.path.realpath(path))):
            return True
        self.problem(f"{path.name} is a link to a place outside the repository; it is not "
                     "read (copy what it should hold into the repository)", self.at_file(path))
        return False

    def contains(self, real: Path) -> bool:
        """Whether the real path ``real`` lies in the repository (or is its root)."""
        return real == self.real_root or self.real_root in real.parents

    def regular(self, path: Path) -> bool:
        """Whether ``path`` is a regular file inside the repository (else an error, recorded)."""
        if not self.inside(path):
            return False
        try:
            mode = os.stat(path).st_mode
        except OSError as e:
            self.problem(f"{path.name} cannot be read: {e.strerror}", self.at_file(path))
            return False
        if not stat.S_ISREG(mode):
            kind = ("a folder" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode)
                    else "a device or socket")
            self.problem(f"{path.name} is {kind}, not a YAML file; remove it or rename it "
                         "without .yaml/.yml", self.at_file(path))
            return False
        return True

    def within_total(self, path: Path) -> bool:
        """Whether the YAML read so far, ``path`` included, is within the repository budget."""
        self.total_bytes += os.stat(path).st_size
        if self.total_bytes <= MAX_REPOSITORY_BYTES:
            return True
        if not self.over_total:
            self.over_total = True
            self.problem(f"the repository's YAML exceeds {MAX_REPOSITORY_BYTES // 2**20} MiB in "
                         "total here; the rest is not read", self.at_file(path))
        return False

    def folder(self, path: Path) -> bool:
        """Whether ``path`` is a folder inside the repository; a link out is an error."""
        return path.is_dir() and self.inside(path)

    def read(self, path: Path, kind: str) -> YamlDocument | None:
        """Parse and schema-check one file; None when it has problems (already recorded)."""
        if not self.regular(path) or not self.within_total(path):
            return None
        display = self.display(path)
        try:
            raw = read_bytes(str(path), display, str(self.real_root))
            key = self.cache.key(raw, kind) if self.cache.enabled else None
            cached = self.cache.get(key, display) if key else None
            if cached is not None:
                return cached
            doc, found, entry = self.parse(path, raw, display, kind)
        except YamlError as e:
            self.problems.extend(e.problems)
            return None
        if found:
            self.problems.extend(found)
            return None
        if key:
            # Written only once the whole repository loaded: invalid input writes nothing.
            self.cache_entries.append(entry if entry and entry[0] == key
                                      else (key, self.cache.entry(key, doc)))
        return doc

    def parse(self, path: Path, raw: bytes, display: str, kind: str,
              ) -> tuple[YamlDocument, list[Problem], tuple[str, bytes] | None]:
        """The document of ``raw``, its schema problems and its parse cache entry if made: a
        worker's, when one parsed these very bytes ahead (desired.ahead), else parsed here.
        Raises YamlError."""
        answer = self.ahead.take(path, raw) if self.ahead is not None else None
        if answer is not None:
            if answer.problems:
                return YamlDocument(display, None), answer.problems, None
            doc = answer.document(display)
            if doc is not None:
                return doc, [], answer.entry
        doc = parse_yaml(raw, display)
        return doc, schema_problems(doc, kind), None

    def parse_ahead(self, paths: list[Path], kind: str) -> None:
        """Hand ``paths`` (read next, in this order) to workers on the other cores, when the
        machine has them and the files are many; only regular files inside the repository that
        the parse cache does not hold."""
        sizes = {p: size for p in paths if (size := self.quiet_size(p)) is not None}
        # Cheap before costly: each file is read to ask the cache only where workers may start.
        if self.ahead is None and not may_help(sum(sizes.values())):
            return
        if self.cache.enabled:
            sizes = {p: size for p, size in sizes.items() if not self.cache.holds(p, kind)}
        if self.ahead is None:
            workers = workers_for(sum(sizes.values())) if sizes else 0
            if not workers:
                return
            self.ahead = Ahead(workers, self.meanwhile)
        version = self.cache.version_used() if self.cache.enabled else None
        self.ahead.queue([Job(str(p), self.display(p), kind, version, str(self.real_root), size)
                          for p, size in sizes.items()])

    def quiet_size(self, path: Path) -> int | None:
        """The size of ``path`` if it is a regular file inside the repository, else None,
        recording nothing (read() records why not when it gets there)."""
        try:
            st = os.stat(path)
            inside = self.contains(Path(os.path.realpath(path)))
        except OSError:
            return None
        return st.st_size if inside and stat.S_ISREG(st.st_mode) else None

    # -- the whole repository --

    def run(self) -> DesiredState:
        root = self.root
        if not root.exists():
            raise InputError([Problem(f"{root}: no such directory")])
        if not root.is_dir():
            raise InputError([Problem(f"{root}: not a directory; give the repository's root "
                                      "(the folder that holds customers/)")])
        settings = self.settings()
        try:
            for files in self.discover():
                self.customer(files, settings)
        finally:
            if self.ahead is not None:
                self.ahead.close()
        self.suggest_addresses()
        if self.problems:
            raise InputError(self.problems, self.state.warnings)
        for key, body in self.cache_entries:
            self.cache.write(key, body)
        return self.state

    def settings(self) -> dict[str, Any]:
        path = _named(self.root, "reconciler")
        if path is None:
            return {}
        doc = self.read(path, "reconciler")
        if doc is None:
            return {}
        data = doc.data
        self.provider_doc = doc
        # The schema has checked each owner; kept as declared, order included, because the
        # CODEOWNERS line lists them in that order.
        self.state.owners = tuple(data.get("owners", ()))
        return data

    def discover(self) -> Iterator[_CustomerFiles]:
        customers_dir = self.root / "customers"
        if not customers_dir.is_dir():
            self.problem(_no_customers(self.root), None)
            return
        if not self.inside(customers_dir):
            return
        for cdir in sorted(customers_dir.iterdir()):
            if cdir.name.startswith(".") or not self.folder(cdir):
                continue
            if not ID_PATTERN.match(cdir.name):
                self.problem(f"the folder name '{cdir.name}' is not a valid customer id; use "
                             "lower-case letters, digits and dashes", self.at_file(cdir))
                continue
            files = _CustomerFiles(cdir.name, cdir, _named(cdir, "customer"))
            if files.customer_file is None:
                self.problem(f"customer folder '{cdir.name}' has no customer.yaml; create it "
                             "with 'customer:' and the tenant", self.at_file(cdir))
            files.resource_files = [("-", p) for p in _yaml_files(cdir, "customer")]
            sites_dir = cdir / "sites"
            if sites_dir.is_dir() and self.inside(sites_dir):
                for sdir in sorted(sites_dir.iterdir()):
                    if sdir.suffix in YAML_SUFFIXES and not sdir.name.startswith(".") \
                            and not sdir.is_dir():
                        # It would declare nothing: say so rather than ignore what it holds.
                        self.problem(f"{sdir.name} lies in sites/ itself, where no resource "
                                     f"can be located; move it into a site's folder "
                                     f"(sites/<site>/{sdir.name}) or up to the customer's",
                                     self.at_file(sdir))
                        continue
                    if sdir.name.startswith(".") or not self.folder(sdir):
                        continue
                    if not ID_PATTERN.match(sdir.name):
                        self.problem(f"the folder name '{sdir.name}' is not a valid site id; "
                                     "use lower-case letters, digits and dashes",
                                     self.at_file(sdir))
                        continue
                    site_file = _named(sdir, "site")
                    if site_file is None:
                        self.problem(f"site folder '{sdir.name}' has no site.yaml; create it "
                                     "with 'site:' and a name", self.at_file(sdir))
                    else:
                        files.site_files[sdir.name] = site_file
                    files.resource_files.extend((sdir.name, p) for p in _yaml_files(sdir, "site"))
            yield files

    # -- one customer --

    def customer(self, files: _CustomerFiles, settings: dict[str, Any]) -> None:
        cdoc = self.read(files.customer_file, "customer") if files.customer_file else None
        site_docs = {sid: self.read(p, "site") for sid, p in files.site_files.items()}
        builder = None
        sites: dict[str, Site] = {}
        if cdoc is not None:
            customer = self.build_customer(files.id, cdoc, settings)
            sites = {sid: self.build_site(sid, sdoc, customer.tenant)
                     for sid, sdoc in site_docs.items() if sdoc is not None}
            state = CustomerState(replace(customer, sites=sites))
            builder = _ResourceBuilder(self, state.customer, state)
            self.state.customers[files.id] = state
        # One file at a time: a file's nodes and plain data are dropped once its resources are
        # built, so memory holds the model, not every parsed file (a few files ahead at most).
        self.parse_ahead([path for _, path in files.resource_files], "resources")
        for sid, path in files.resource_files:
            rdoc = self.read(path, "resources")
            # Without a valid customer.yaml (or site.yaml) a file can be checked against its
            # schema only; the owner's own problem is already reported.
            if rdoc is not None and builder is not None and (sid == "-" or sid in sites):
                builder.file(rdoc, sid)
        if builder is not None:
            builder.alias_collisions()

    def build_customer(self, cid: str, doc: YamlDocument, settings: dict[str, Any]) -> Customer:
        body = doc.data["customer"]
        if "id" in body and body["id"] != cid:
            self.problem(f"this file says customer '{body['id']}' but sits in the folder of "
                         f"customer '{cid}'; the folder name is the customer's id",
                         doc.value_ref(body, "id"))
        t = {**body["tenant"], **self.secret_refs(doc, body["tenant"])}
        tenant = Tenant(
            id=t["id"].lower(),
            initial_domain=t["initial_domain"].lower(),
            app_id=t.get("app_id"),
            certificate_thumbprint=t.get("certificate_thumbprint"),
            certificate=t.get("certificate"),
            certificate_key=t.get("certificate_key"),
            certificate_passphrase=t.get("certificate_passphrase"),
            exchange=t.get("exchange", "enabled") == "enabled",
            connection=t.get("connection", "exchange"),
            cloud=t.get("cloud"),
            exchange_url=t.get("exchange_url"),
            authority_host=t.get("authority_host"),
            exchange_resource=t.get("exchange_resource"),
            concurrency=t.get("concurrency"),
            batch_size=t.get("batch_size"),
        )
        policy_values = {**settings.get("policy", {}), **body.get("policy", {})}
        policy = Policy(
            prune=policy_values.get("prune", False),
            max_deletes=policy_values.get("max_deletes"),
            max_change_percent=(float(policy_values["max_change_percent"])
                                if "max_change_percent" in policy_values else None),
            cross_site_permissions=policy_values.get("cross_site_permissions", "deny"),
            protect=frozenset(a.lower() for a in policy_values.get("protect", ())),
            allowed_forwarding_domains=frozenset(
                d.lower() for d in policy_values.get("allowed_forwarding_domains", ())),
        )
        own_templates = body.get("templates", {})
        templates = {**settings.get("templates", {}), **own_templates}
        for name, template in templates.items():
            origin = doc if name in own_templates else self.provider_doc
            if origin is not None:
                self.template_docs[id(template)] = origin
        return Customer(
            id=cid,
            name=body["name"],
            tenant=tenant,
            mail_domains=tuple(d.lower() for d in body["mail_domains"]),
            policy=policy,
            templates=templates,
            owners=tuple(body.get("owners", ())),
            source=doc.where(body),
        )

    def secret_refs(self, doc: YamlDocument, tenant: dict[str, Any]) -> dict[str, str]:
        """The tenant's secret references, checked: an environment variable no other program
        reads, a file that is absolute or relative to the repository (made absolute here, so
        that it does not depend on the working directory) and, where it exists, regular."""
        out = {}
        for key in ("certificate_key", "certificate_passphrase", "certificate"):
            reference = tenant.get(key)
            if not isinstance(reference, str):
                continue
            kind, _, target = reference.partition(":")
            if kind == "env":
                why = secretref.env_name_problem(target)
            elif kind == "file":
                path = secretref.file_path(target, self.root.resolve())
                why = (secretref.outside_problem(target, self.root)
                       or secretref.file_problem(path))
                out[key] = f"file:{path}"
            else:
                continue
            if why:
                self.problem(f"tenant.{key}: {why}", doc.value_ref(tenant, key))
        return out

    def build_site(self, sid: str, doc: YamlDocument, tenant: Tenant) -> Site:
        body = doc.data["site"]
        if "id" in body and body["id"] != sid:
            self.problem(f"this file says site '{body['id']}' but sits in the folder of site "
                         f"'{sid}'; the folder name is the site's id", doc.value_ref(body, "id"))
        exchange = tenant.exchange
        if "exchange" in body:
            exchange = body["exchange"] == "enabled"
            if exchange and not tenant.exchange:
                self.problem("exchange is enabled at this site but disabled for the customer's "
                             "tenant (customer.yaml); enable it there first",
                             doc.value_ref(body, "exchange"))
        return Site(
            id=sid,
            name=body["name"],
            exchange=exchange,
            placement=tuple((k, tuple(v)) for k, v in body.get("placement", {}).items()),
            owners=tuple(body.get("owners", ())),
            source=doc.where(body),
        )


# --- resources ----------------------------------------------------------------------------------

_LISTS = tuple((t, t.yaml_key) for t in ResourceType)


class _ResourceBuilder:
    """Builds one customer's resources from its files, checking their meaning as it goes."""

    def __init__(self, loader: _Loader, customer: Customer, state: CustomerState) -> None:
        self.loader = loader
        self.customer = customer
        self.state = state
        self.problem = loader.problem
        self.domains = frozenset(customer.mail_domains)
        self.derived: dict[str, str] = {}  # id -> the name its alias was derived from
        self.address_domains = frozenset(
            d.lower() for d in (*self.domains, customer.tenant.initial_domain))
        # (address, internal) of the references found fine on their own: a grantee is named
        # again and again.
        self.fine_addresses: set[tuple[str, bool]] = set()
        # One frozenset for each set of rights written: 500,000 grants name a handful.
        self.rights_sets: dict[tuple[str, ...], frozenset[str]] = {}

    def file(self, doc: YamlDocument, sid: str) -> None:
        data = doc.data
        cid = self.customer.id
        if "customer" in data and data["customer"] != cid:
            self.problem(f"this file names customer '{data['customer']}' but sits in the folder "
                         f"of customer '{cid}'; a file declares resources for its own folder "
                         "only: move it, or fix the name", doc.value_ref(data, "customer"))
            return
        if "site" in data:
            if sid == "-":
                self.problem(f"this file names site '{data['site']}' but sits at the customer "
                             f"level; move it into sites/{data['site']}/ or remove 'site:'",
                             doc.value_ref(data, "site"))
                return
            if data["site"] != sid:
                self.problem(f"this file names site '{data['site']}' but sits in the folder of "
                             f"site '{sid}'; a file declares resources for its own folder only: "
                             "move it, or fix the name", doc.value_ref(data, "site"))
                return
        location = Location(cid, sid)
        if sid == "-":
            exchange = self.customer.tenant.exchange
            why = "the customer's tenant has exchange: disabled (customer.yaml)"
        else:
            exchange = self.customer.sites[sid].exchange
            why = f"site '{sid}' has exchange: disabled (site.yaml)"
        for rtype, key in _LISTS:
            items = data.get(key)
            if not items:
                continue
            if not exchange:
                self.problem(f"mailboxes cannot be declared here: {why}; enable exchange there "
                             "or move these entries to a site where it is enabled",
                             doc.key_ref(data, key))
                continue
            for item in items:
                resource = self.build(rtype, doc, item, location)
                if resource is not None:
                    self.add(resource)

    def alias_collisions(self) -> None:
        """Aliases that differ only in what alias derivation turns into or drops ('-'): Exchange
        derives "Sales Team" and "SalesTeam" alike, so the two entries would fight over one
        alias (docs/format.md §4)."""
        seen: dict[str, Resource] = {}
        for rid in sorted(self.state.resources):
            resource = self.state.resources[rid]
            if isinstance(resource, UserMailbox):
                continue
            key = rid.partition("@")[0].replace("-", "")
            other = seen.setdefault(key, resource)
            if other is resource:
                continue
            alias = rid.partition("@")[0]
            how = (f"have the same alias {alias}, which is the tenant's whatever the domain"
                   if alias == other.id.partition("@")[0] else
                   "differ only in '-', which Exchange's own alias derivation drops")
            self.problem(f"the alias of {resource.id} and that of {other.id} (at "
                         f"{other.source}) {how}: the two entries would collide; give one of "
                         f"them another alias", resource.source)

    def add(self, resource: Resource) -> None:
        existing = self.state.resources.get(resource.id)
        if existing is None:
            self.state.add(resource)
            return
        note = ""
        if resource.id in self.derived:
            note = (f" (the alias is derived from the name '{self.derived[resource.id]}'; "
                    "write alias: to choose another)")
        self.problem(f"{resource.id} is declared twice: here and at {existing.source}{note}; "
                     "an identity may be declared once (move or merge the entries)",
                     resource.source)

    # -- one entry --

    def apply_template(self, rtype: ResourceType, doc: YamlDocument, item: dict[str, Any],
                       ) -> tuple[dict[str, Any], str | None, dict[str, Any],
                                  YamlDocument | None] | None:
        name = item.get("template")
        implicit = name is None and rtype is ResourceType.USER_MAILBOX
        if implicit:
            name = DEFAULT_TEMPLATE if DEFAULT_TEMPLATE in self.customer.templates else None
        if name is None:
            return item, None, {}, None
        template = self.customer.templates.get(name)
        if template is None:
            known = sorted(self.customer.templates)
            close = difflib.get_close_matches(name, known, n=1)
            hint = (f"did you mean '{close[0]}'?" if close else
                    f"known templates: {', '.join(known)}" if known else
                    "this customer has no templates (define them under templates: in "
                    "customer.yaml or reconciler.yaml)")
            self.problem(f"unknown template '{name}'; {hint}", doc.value_ref(item, "template"))
            return None
        allowed = self.loader.properties[rtype]
        wrong = [k for k in template if k not in allowed]
        if wrong:
            self.problem(f"template '{name}' sets {', '.join(wrong)}, which "
                         f"{rtype.yaml_key.replace('_', ' ')} do not have; use another template",
                         doc.value_ref(item, "template") if not implicit else doc.where(item))
            return None
        merged = {**template, **item}
        merged.pop("template", None)
        return merged, name, template, self.loader.template_docs.get(id(template))

    def build(self, rtype: ResourceType, doc: YamlDocument, item: dict[str, Any],
              location: Location) -> Resource | None:
        errors_before = len(self.loader.problems)
        applied = self.apply_template(rtype, doc, item)
        if applied is None:  # reported; check the entry's own values all the same
            applied = ({k: v for k, v in item.items() if k != "template"}, None, {}, None)
        merged, template_name, template, template_doc = applied
        ctx = _Entry(doc, item, template, template_doc)
        common: dict[str, Any] = {
            "located_at": location,
            "template": template_name,
            "source": doc.where(item),
        }
        if "permissions" in merged:
            common["permissions"] = self.grants(ctx, merged["permissions"],
                                                rtype is ResourceType.DISTRIBUTION_GROUP)
        if rtype is ResourceType.DISTRIBUTION_GROUP:
            rid = self.identity(ctx, merged)
            owners, owner_sources = self.principals(ctx, merged, "owners")
            members, member_sources = self.principals(ctx, merged, "members")
            resource: Resource = DistributionGroup(
                id=rid, name=merged["name"], alias=rid.partition("@")[0], owners=owners,
                members=members, owner_sources=owner_sources, member_sources=member_sources,
                accept_external_senders=merged.get("accept_external_senders"), **common)
        else:
            common.update(self.mailbox_settings(ctx, merged))
            if rtype is ResourceType.USER_MAILBOX:
                rid = merged["user"].lower()
                resource = UserMailbox(id=rid, display_name=merged.get("display_name"),
                                       convert_to=merged.get("convert_to"), **common)
            elif rtype is ResourceType.SHARED_MAILBOX:
                rid = self.identity(ctx, merged)
                resource = SharedMailbox(id=rid, name=merged["name"], alias=rid.partition("@")[0],
                                         **common)
            else:
                rid = self.identity(ctx, merged)
                resource = RoomMailbox(id=rid, name=merged["name"], alias=rid.partition("@")[0],
                                       location=merged.get("location"),
                                       capacity=merged.get("capacity"),
                                       booking=self.booking(ctx, merged.get("booking")),
                                       **common)
        self.loader.check_addresses(resource, self.address_domains, self.fine_addresses)
        if len(self.loader.problems) != errors_before:
            return None
        return resource

    def identity(self, ctx: _Entry, item: dict[str, Any]) -> str:
        domain = self.domain(ctx, item)
        alias = item.get("alias")
        if alias is not None:
            return f"{alias}@{domain}".lower()
        alias = derive_alias(item["name"])
        if not alias:
            self.problem(f"no alias can be derived from the name '{item['name']}'; "
                         "write alias: with letters, digits, '.', '_' or '-'", ctx.ref("name"))
        identity = f"{alias}@{domain}".lower()
        self.derived[identity] = item["name"]
        return identity

    def domain(self, ctx: _Entry, item: dict[str, Any]) -> str:
        domain = item.get("domain")
        if domain is None:
            return self.customer.default_domain
        if domain.lower() not in self.domains:
            self.problem(f"the domain '{domain}' is not among the mail_domains of customer "
                         f"'{self.customer.id}' ({', '.join(self.customer.mail_domains)}); use "
                         "one of those or add it to mail_domains in customer.yaml",
                         ctx.ref("domain"))
        return domain

    def principals(self, ctx: _Entry, item: dict[str, Any], key: str,
                   ) -> tuple[tuple[str, ...] | None, tuple[SourceRef | None, ...]]:
        values = item.get(key)
        if values is None:
            return None, ()
        doc = ctx.doc_of(key)
        sources = tuple(doc.item_refs(values))
        seen: dict[str, int] = {}
        for i, value in enumerate(values):
            low = value.lower()
            if low in seen:
                self.problem(f"{value} is listed twice in {key}; list each once", sources[i])
            seen[low] = i
        return tuple(values), sources

    def grants(self, ctx: _Entry, items: list[dict[str, Any]], group: bool,
               ) -> tuple[AccessGrant, ...]:
        grants = []
        seen: set[str] = set()
        for g, source in zip(items, ctx.doc_of("permissions").item_refs(items), strict=True):
            access = self.rights(g["access"])
            user = g["user"]
            low = user.lower()
            if low in seen:
                self.problem(f"{user} appears twice in permissions; give one entry with every "
                             "access right", source)
            seen.add(low)
            if group and "FullAccess" in access:
                self.problem("FullAccess does not exist on a distribution group; groups take "
                             "SendAs and SendOnBehalf only", source)
            automapping = g.get("automapping")
            if automapping is not None and "FullAccess" not in access:
                self.problem("automapping applies to FullAccess only; add FullAccess to access "
                             "or remove automapping", source)
            grants.append(AccessGrant(user, access, automapping, source))
        return tuple(grants)

    def rights(self, names: list[str]) -> frozenset[str]:
        key = tuple(names)
        found = self.rights_sets.get(key)
        if found is None:
            found = self.rights_sets[key] = frozenset(names)
        return found

    def calendar(self, ctx: _Entry, items: list[dict[str, Any]]) -> tuple[CalendarGrant, ...]:
        grants = []
        seen: set[str] = set()
        for g, source in zip(items, ctx.doc_of("calendar_permissions").item_refs(items),
                             strict=True):
            user = g["user"]
            role = g.get("role")
            rights = g.get("rights")
            delegate = g.get("delegate", False)
            private = g.get("private_items", False)
            low = user.lower()
            if low in seen:
                self.problem(f"{user} appears twice in calendar_permissions; keep one entry",
                             source)
            seen.add(low)
            if role is not None and rights is not None:
                self.problem("give either a role or rights, not both (a role is a named set of "
                             "rights); remove one", source)
            elif role is None and rights is None:
                self.problem("a calendar entry needs a role (such as Reviewer or Editor) or "
                             "rights; add one", source)
            if delegate and role != "Editor":
                self.problem(f"delegate applies only to the Editor role, not "
                             f"{role or 'individual rights'}; use role: Editor or remove delegate",
                             source)
            if private and not delegate:
                self.problem("private_items needs delegate: true (only delegates may see "
                             "private items); add delegate: true or remove private_items", source)
            grants.append(CalendarGrant(
                user, role, self.rights(rights) if rights is not None else None, delegate,
                private, source))
        return tuple(grants)

    def mailbox_settings(self, ctx: _Entry, item: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if "retention_policy" in item:
            out["retention_policy"] = item["retention_policy"]
        if "archive" in item:
            out["archive"] = item["archive"]
        if "forwarding" in item:
            out["forwarding"] = self.forwarding(ctx, item["forwarding"], ctx.ref("forwarding"))
        if "auto_reply" in item:
            out["auto_reply"] = self.auto_reply(ctx, item["auto_reply"],
                                                ctx.ref("auto_reply"))
        if "custom_attributes" in item:
            out["custom_attributes"] = tuple(
                sorted((int(k), v) for k, v in item["custom_attributes"].items()))
        if "calendar_permissions" in item:
            out["calendar_permissions"] = self.calendar(ctx, item["calendar_permissions"])
        return out

    def booking(self, ctx: _Entry, value: dict[str, Any] | None) -> Booking | None:
        """A room's ``booking:``. Delegates get requests only when the room accepts them
        automatically (AutoUpdate: "ResourceDelegates will not be forwarded requests"; None:
        calendar processing is off), so declaring delegates asks for ``automate:
        AutoAccept``; and they need ForwardRequestsToDelegates and AllRequestInPolicy, which
        the plan then keeps on (``delegates_receive_requests``)."""
        if value is None:
            return None
        doc, source = ctx.doc_of("booking"), ctx.ref("booking")
        delegates = value.get("delegates")
        sources: tuple[SourceRef | None, ...] = ()
        if delegates is not None:
            sources = tuple(doc.item_refs(delegates))
            seen: set[str] = set()
            for i, name in enumerate(delegates):
                if name.lower() in seen:
                    self.problem(f"{name} is listed twice in booking delegates; list each once",
                                 sources[i])
                seen.add(name.lower())
        automate = value.get("automate")
        if delegates and automate != "AutoAccept":
            self.problem(
                f"booking delegates receive a room's requests only with automate: AutoAccept "
                f"(with {automate or 'automate left out'} Exchange forwards them nothing); "
                f"add automate: AutoAccept or remove the delegates",
                doc.value_ref(value, "automate") if automate else source)
        return Booking(automate=automate,
                       delegates=tuple(delegates) if delegates is not None else None,
                       all_book_in_policy=value.get("all_book_in_policy"),
                       delegates_receive_requests=True if delegates else None,
                       source=source, delegate_sources=sources)

    def forwarding(self, ctx: _Entry, value: str | dict[str, Any],
                   source: SourceRef | None) -> Forwarding:
        if isinstance(value, str):
            return Forwarding(source=source)
        internal, external = value.get("internal"), value.get("external")
        if internal is not None and external is not None:
            self.problem("forwarding has both internal and external; mail goes to one place: "
                         "keep one of them", source)
        elif internal is None and external is None:
            self.problem("forwarding needs internal (a recipient of the tenant) or external "
                         "(any address); write forwarding: none to remove forwarding", source)
        return Forwarding(internal=internal, external=external,
                          deliver_to_mailbox=value.get("deliver_to_mailbox", False), source=source)

    def auto_reply(self, ctx: _Entry, value: dict[str, Any],
                   source: SourceRef | None) -> AutoReply:
        # Each time's own line, in the entry or in the template that wrote it.
        doc = ctx.doc_of("auto_reply")
        start = self.timestamp(value, "start", doc.value_ref(value, "start") or source)
        end = self.timestamp(value, "end", doc.value_ref(value, "end") or source)
        if value["state"] == "Scheduled" and (value.get("start") is None
                                               or value.get("end") is None):
            self.problem("a Scheduled auto_reply needs start and end (e.g. start: "
                         "2026-12-20T00:00:00Z); add them, or use state: Enabled", source)
        if start is not None and end is not None and start >= end:
            self.problem(f"auto_reply ends ({end}) before it starts ({start}); swap them",
                         source)
        return AutoReply(
            state=value["state"], start=start, end=end,
            internal_message=value.get("internal_message"),
            external_audience=value.get("external_audience"),
            external_message=value.get("external_message"), source=source)

    def timestamp(self, value: dict[str, Any], key: str, source: SourceRef | None) -> str | None:
        """An auto-reply time in UTC; a date that cannot exist (30 February, hour 25) or lies
        outside the years Exchange's schedule is meant for is an error, not a value that
        Exchange would refuse at apply."""
        raw = value.get(key)
        moment = _utc(raw)
        if moment is None or raw is None:
            return moment
        try:
            year = dt.datetime.fromisoformat(moment.replace("Z", "+00:00")).year
        except ValueError:
            self.problem(f"auto_reply {key} '{raw}' is not a real date and time; write it as "
                         f"ISO 8601 with a time zone, e.g. 2026-12-20T00:00:00Z", source)
            return None
        if not MIN_AUTO_REPLY_YEAR <= year <= MAX_AUTO_REPLY_YEAR:
            self.problem(f"auto_reply {key} '{raw}' is out of range: the year must lie between "
                         f"{MIN_AUTO_REPLY_YEAR} and {MAX_AUTO_REPLY_YEAR}", source)
            return None
        return moment


@dataclass(slots=True)
class _Entry:
    """One YAML entry being built, and where its template (if any) was written."""

    doc: YamlDocument
    item: dict[str, Any]
    template: dict[str, Any]
    template_doc: YamlDocument | None

    def doc_of(self, key: str) -> YamlDocument:
        """The document that wrote ``key``: the entry's own, else its template's."""
        if key in self.item or self.template_doc is None:
            return self.doc
        return self.template_doc

    def ref(self, key: str) -> SourceRef | None:
        """The position of ``key``'s value, in the entry or in its template."""
        if key in self.item or self.template_doc is None:
            return self.doc.value_ref(self.item, key)
        return self.template_doc.value_ref(self.template, key)


def _utc(value: str | None) -> str | None:
    """ISO-8601 text with a time zone -> 'YYYY-MM-DDTHH:MM:SSZ' in UTC; text that names no
    real moment, or none UTC can hold (year 9999 west of Greenwich), stays as written, for
    :meth:`_ResourceBuilder.timestamp` to report."""
    if value is None:
        return None
    text = _ZONE_SPACE.sub("", value.replace(" ", "T", 1)).replace("z", "Z").replace("t", "T")
    try:
        parsed = dt.datetime.fromisoformat(text)
        if parsed.tzinfo is None:  # pragma: no cover - the schema requires a zone
            parsed = parsed.replace(tzinfo=dt.UTC)
        return parsed.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (ValueError, OverflowError):
        return value

