"""Write Intake e-mail plugins in Python (componentize-py).

The same shape as the Rust SDK (``intake-plugin-sdk``): subclass
:class:`Plugin`, take the binding's JSON configuration in ``__init__``,
implement ``match`` (the matcher role) and/or ``unknown_sender`` (the
unknown-sender policy), and export the class once at the bottom of the app
module::

    import intake_plugin
    from intake_plugin import Plugin, Verdict, address, log

    class SenderMatch(Plugin):
        CONFIG = {"ignore": "array"}

        def __init__(self, config):
            self.ignore = [address.normalize(a) for a in config.get("ignore", [])]

        def match(self, message, directory):
            sender = message.sender_address()
            if sender is None or address.normalize(sender) in self.ignore:
                return Verdict.no_opinion()
            found = directory.find_by_address(sender)
            return Verdict.attach([p.to_ref() for p in found.parties])

    Lifecycle, Matcher = intake_plugin.export(SenderMatch, "matcher")

Build it with ``componentize-py -d SDK/wit -w matcher-plugin componentize app
-p . -p SDK -o my_plugin.wasm`` (``intake plugin new NAME --lang python``
writes a project with a ``build.sh`` that does this), then try it with
``intake plugin test my_plugin.wasm --message mail/``.

The engine makes a fresh instance for every message and calls ``init``
(here: ``Plugin.__init__``) first, so nothing survives between messages.
An :class:`Error` raised by the plugin is a plugin failure: the binding's
failure policy applies (quarantine by default) and the operator reads its
text. Any other exception is reported the same way, with its type and line.
"""

import json
import traceback
from typing import Any, Dict, Iterator, List, Optional, Sequence

from . import address, log

__all__ = [
    "Error",
    "Plugin",
    "Message",
    "Directory",
    "Verdict",
    "PolicyVerdict",
    "export",
    "address",
    "log",
    "CONTACT",
    "LEAD",
]

CONTACT = "contact"
"""The ``kind`` of a party the CRM tracks as a contact."""
LEAD = "lead"
"""The ``kind`` of a prospective customer."""


class Error(Exception):
    """A plugin's failure, shown to the operator. Raise it from ``__init__``
    for a bad configuration, or from a role for a failed message."""


class Plugin:
    """Base class of a plugin.

    ``CONFIG`` declares the settings the configuration may give, name ->
    type (``"string"``, ``"integer"``, ``"number"``, ``"boolean"``,
    ``"array"`` or ``"object"``). A configuration with another key, or a
    value of the wrong type, is refused before ``__init__`` runs, with the
    field named (the Rust SDK's ``deny_unknown_fields``). ``None`` (the
    default) checks nothing.
    """

    CONFIG: Optional[Dict[str, str]] = None

    def __init__(self, config: Dict[str, Any]) -> None:
        """Builds the plugin from the binding's configuration (a dict; ``{}``
        when none was given). Raise :class:`Error` if it is unusable."""
        self.config = config


_TYPES = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "array": (list,),
    "object": (dict,),
}


def parse_config(text: str, declared: Optional[Dict[str, str]]) -> Dict[str, Any]:
    """The binding's JSON configuration as a dict, checked against
    ``declared`` (see :attr:`Plugin.CONFIG`). Raises :class:`Error`."""
    if not text.strip():
        text = "{}"
    try:
        config = json.loads(text)
    except ValueError as e:
        raise Error(f"invalid configuration: {e}") from None
    if not isinstance(config, dict):
        raise Error("invalid configuration: expected a JSON object")
    if declared is None:
        return config
    for key, value in config.items():
        if key not in declared:
            expected = ", ".join(f"`{k}`" for k in declared)
            raise Error(f"invalid configuration: unknown field `{key}`, expected one of {expected}")
        wanted = declared[key]
        if wanted not in _TYPES:
            raise Error(f"CONFIG declares `{key}` as {wanted!r}; use one of {', '.join(_TYPES)}")
        ok = isinstance(value, _TYPES[wanted]) and not (
            wanted in ("integer", "number") and isinstance(value, bool)
        )
        if not ok:
            raise Error(f"invalid configuration: `{key}` must be {_article(wanted)} {wanted}")
    return config


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


class Message:
    """The read-only view of one message, with conveniences.

    Every field of the contract's ``message`` record is an attribute
    (``subject``, ``to``, ``cc``, ``headers``, ``text_body``, ...); ``from``
    is ``from_``. Mailboxes have ``name`` and ``address``.
    """

    __slots__ = ("_record",)

    def __init__(self, record: Any) -> None:
        self._record = record

    def __getattr__(self, name: str) -> Any:
        return getattr(self._record, name)

    def header(self, name: str) -> Optional[str]:
        """The first header with this name (case-insensitive), as written."""
        wanted = name.lower()
        for h in self._record.headers:
            if h.name.lower() == wanted:
                return h.value
        return None

    def headers_named(self, name: str) -> List[str]:
        """Every header with this name (case-insensitive), in message order."""
        wanted = name.lower()
        return [h.value for h in self._record.headers if h.name.lower() == wanted]

    def sender_mailbox(self) -> Any:
        """The first ``From:`` mailbox, else ``Sender:``, else None."""
        if self._record.from_:
            return self._record.from_[0]
        return self._record.sender

    def sender_address(self) -> Optional[str]:
        """The address that sent the message: the first ``From:`` mailbox,
        else ``Sender:``."""
        mailbox = self.sender_mailbox()
        return mailbox.address if mailbox is not None else None

    def recipients(self) -> Iterator[Any]:
        """``To:`` and ``Cc:`` mailboxes."""
        yield from self._record.to
        yield from self._record.cc

    def participants(self) -> Iterator[Any]:
        """Everyone on the message: From, Sender, Reply-To, To, Cc."""
        r = self._record
        yield from r.from_
        if r.sender is not None:
            yield r.sender
        yield from r.reply_to
        yield from self.recipients()

    def thread_ids(self) -> List[str]:
        """Ids of earlier messages in the thread, nearest first: In-Reply-To,
        then References from the newest back, without duplicates."""
        ids: List[str] = []
        for i in list(self._record.in_reply_to) + list(reversed(self._record.references)):
            if i not in ids:
                ids.append(i)
        return ids

    def content_type_param(self, param: str) -> Optional[str]:
        """A parameter of the ``Content-Type`` header, unquoted."""
        value = self.header("Content-Type")
        if value is None:
            return None
        for part in value.split(";")[1:]:
            name, eq, v = part.partition("=")
            if eq and name.strip().lower() == param.lower():
                return v.strip().strip('"')
        return None

    def auto_reply_reason(self) -> Optional[str]:
        """Why this message looks machine-generated (auto-reply, bulk mail,
        mailing list, delivery report, robot sender), or None for mail that
        looks written by a person. The text is the Rust SDK's."""
        v = self.header("Auto-Submitted")
        if v is not None and address.trim(v) and address.trim(v).lower() != "no":
            return f"Auto-Submitted: {address.trim(v)}"
        report = self.content_type_param("report-type")
        if self._record.content_type.lower() == "multipart/report" and (
            report is not None and report.lower() == "delivery-status"
        ):
            return "delivery status notification"
        v = self.header("Precedence")
        if v is not None and address.trim(v).lower() in ("bulk", "junk", "list"):
            return f"Precedence: {address.trim(v).lower()}"
        for name in ("X-Autoreply", "X-Autorespond", "X-Auto-Reply"):
            if self.header(name) is not None:
                return f"{name} header"
        v = self.header("List-Id")
        if v is not None:
            return f"mailing list {address.trim(v)}"
        sender = self.sender_address()
        if sender is not None and address.is_robot(sender):
            return f"robot sender {sender}"
        return None


class LookupResult:
    """The answer to a directory look-up: ``parties`` (each with ``kind``,
    ``id``, ``email``, ``name``, ``company``, ``external_id`` and
    ``to_ref()``) and ``truncated``."""

    __slots__ = ("parties", "truncated")

    def __init__(self, parties: List["Party"], truncated: bool) -> None:
        self.parties = parties
        self.truncated = truncated


class PartyRef:
    """A reference to a party: what :meth:`Verdict.attach` takes."""

    __slots__ = ("kind", "id")

    def __init__(self, kind: str, id: str) -> None:  # noqa: A002 - the contract's name
        self.kind = kind
        self.id = id

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PartyRef) and (self.kind, self.id) == (other.kind, other.id)

    def __hash__(self) -> int:
        return hash((self.kind, self.id))

    def __repr__(self) -> str:
        return f"PartyRef({self.kind!r}, {self.id!r})"


class Party:
    """A party as the directory knows it. ``kind`` is ``"contact"`` or
    ``"lead"``."""

    __slots__ = ("kind", "id", "email", "name", "company", "external_id")

    def __init__(self, kind, id, email, name=None, company=None, external_id=None):  # noqa: A002
        self.kind = kind
        self.id = id
        self.email = email
        self.name = name
        self.company = company
        self.external_id = external_id

    def to_ref(self) -> PartyRef:
        """The reference a matcher returns to attach a message to this party."""
        return PartyRef(self.kind, self.id)

    def __repr__(self) -> str:
        return f"Party({self.kind!r}, {self.id!r}, {self.email!r})"


class Directory:
    """The tenant's CRM directory, as the engine hands it to a role.
    Look-ups raise :class:`Error` when the directory is unavailable or
    refuses the argument; let it propagate to fail the message, or catch it
    to carry on."""

    def find_by_address(self, address: str) -> LookupResult:
        """Contacts and leads whose address equals ``address``
        (case-insensitive; no plus folding)."""
        return self._lookup("find_by_address", address)

    def find_by_domain(self, domain: str) -> LookupResult:
        """Contacts and leads whose address is in ``domain``."""
        return self._lookup("find_by_domain", domain)

    def parties_for_message_id(self, message_id: str) -> LookupResult:
        """The parties already linked to the earlier message with this
        Message-ID, for threading."""
        return self._lookup("parties_for_message_id", message_id)

    def _lookup(self, what: str, argument: str) -> LookupResult:
        from ._host import Err, directory, types

        try:
            result = getattr(directory, what)(argument)
        except Err as e:
            if isinstance(e.value, types.LookupError_Unavailable):
                raise Error(f"directory unavailable: {e.value.value}") from None
            raise Error(f"directory look-up refused: {e.value.value}") from None
        kinds = {types.PartyKind.CONTACT: CONTACT, types.PartyKind.LEAD: LEAD}
        parties = [
            Party(kinds[p.kind], p.id, p.email, p.name, p.company, p.external_id)
            for p in result.parties
        ]
        return LookupResult(parties, result.truncated)


class Verdict:
    """A matcher's answer. Build one with the class methods.

    ``outcome`` is ``"no-opinion"``, ``"attach"`` (``parties``) or
    ``"end-chain"`` (``terminal``: ``"discard"``, ``"quarantine"`` or
    ``"keep-unlinked"``, with ``reason``).
    """

    __slots__ = ("outcome", "parties", "terminal", "reason", "server_action")

    def __init__(self, outcome, parties=(), terminal=None, reason=None):
        self.outcome = outcome
        self.parties = list(parties)
        self.terminal = terminal
        self.reason = reason
        self.server_action: Optional[str] = None

    @classmethod
    def no_opinion(cls) -> "Verdict":
        """Nothing to say: the next matcher runs."""
        return cls("no-opinion")

    @classmethod
    def attach(cls, parties: Sequence[Any]) -> "Verdict":
        """Attach to these parties (references or parties) and end the
        chain; an empty list is no opinion."""
        refs = [p.to_ref() if isinstance(p, Party) else p for p in parties]
        return cls("attach", refs) if refs else cls("no-opinion")

    @classmethod
    def discard(cls, reason: str) -> "Verdict":
        """End the chain and discard the message, logging ``reason``."""
        return cls("end-chain", terminal="discard", reason=reason)

    @classmethod
    def quarantine(cls, reason: str) -> "Verdict":
        """End the chain and quarantine the message with ``reason``."""
        return cls("end-chain", terminal="quarantine", reason=reason)

    @classmethod
    def keep_unlinked(cls) -> "Verdict":
        """End the chain and store the message without links."""
        return cls("end-chain", terminal="keep-unlinked")

    def with_server_action(self, action: str) -> "Verdict":
        """Suggests a server action: ``leave``, ``mark-seen``, ``delete`` or
        ``move:FOLDER`` (capped by the account's settings)."""
        _server_action(action)
        self.server_action = action
        return self

    def __repr__(self) -> str:
        return f"Verdict({self.outcome!r}, parties={self.parties!r}, terminal={self.terminal!r})"


class PolicyVerdict:
    """An unknown-sender policy's answer. ``decision`` is ``"create-lead"``
    (``email``, ``name``, ``company``), ``"quarantine"``, ``"discard"``
    (``reason``) or ``"keep-unlinked"``."""

    __slots__ = ("decision", "email", "name", "company", "reason", "server_action")

    def __init__(self, decision, email=None, name=None, company=None, reason=None):
        self.decision = decision
        self.email = email
        self.name = name
        self.company = company
        self.reason = reason
        self.server_action: Optional[str] = None

    @classmethod
    def create_lead(cls, email: str, name: Optional[str] = None,
                    company: Optional[str] = None) -> "PolicyVerdict":
        """Create a lead and attach the message to it."""
        return cls("create-lead", email=email, name=name, company=company)

    @classmethod
    def quarantine(cls, reason: str) -> "PolicyVerdict":
        """Quarantine the message with ``reason``."""
        return cls("quarantine", reason=reason)

    @classmethod
    def discard(cls, reason: str) -> "PolicyVerdict":
        """Discard the message, logging ``reason``."""
        return cls("discard", reason=reason)

    @classmethod
    def keep_unlinked(cls) -> "PolicyVerdict":
        """Store the message without links (the default policy)."""
        return cls("keep-unlinked")

    def with_server_action(self, action: str) -> "PolicyVerdict":
        """Suggests a server action; see :meth:`Verdict.with_server_action`."""
        _server_action(action)
        self.server_action = action
        return self


def _server_action(action: str):
    """The contract's server action for ``leave``, ``mark-seen``, ``delete``
    or ``move:FOLDER``; raises :class:`Error` for anything else."""
    spelled = address.trim(action)
    if spelled in ("leave", "mark-seen", "delete"):
        return spelled
    if spelled.startswith("move:") and address.trim(spelled[5:]):
        return spelled
    raise Error(
        f"unknown server action {spelled!r} (expected leave, mark-seen, delete or move:FOLDER)"
    )


def _failure(e: BaseException) -> str:
    """The text the operator reads for an exception out of the plugin."""
    if isinstance(e, Error):
        return str(e)
    frames = traceback.extract_tb(e.__traceback__)
    where = f" ({frames[-1].filename.rsplit('/', 1)[-1]} line {frames[-1].lineno})" if frames else ""
    return f"{type(e).__name__}: {e}{where}"


def build(plugin_class: type, config: str) -> Plugin:
    """Parses ``config`` and builds the plugin; shared by ``init`` and the
    native test helpers (:mod:`intake_plugin.testing`)."""
    return plugin_class(parse_config(config, getattr(plugin_class, "CONFIG", None)))


def export(plugin_class: type, *roles: str):
    """The classes componentize-py looks for in the app module, for
    ``plugin_class`` and the roles named (``"matcher"``,
    ``"unknown_sender"``), in that order after ``Lifecycle``::

        Lifecycle, Matcher = intake_plugin.export(MyPlugin, "matcher")
        Lifecycle, Matcher, UnknownSender = intake_plugin.export(MyBoth, "matcher", "unknown_sender")

    Their names must be exactly these: they are the component's exports.
    The world to build is ``matcher-plugin``, ``unknown-sender-plugin`` or
    ``full-plugin`` to match.
    """
    if not roles:
        raise TypeError("export(): name the roles, e.g. export(MyPlugin, \"matcher\")")
    from . import _exports

    classes = [_exports.lifecycle(plugin_class)]
    for role in roles:
        if role == "matcher":
            if not callable(getattr(plugin_class, "match", None)):
                raise TypeError(f"{plugin_class.__name__} exports matcher but has no match()")
            classes.append(_exports.matcher())
        elif role == "unknown_sender":
            if not callable(getattr(plugin_class, "unknown_sender", None)):
                raise TypeError(
                    f"{plugin_class.__name__} exports unknown_sender but has no unknown_sender()"
                )
            classes.append(_exports.unknown_sender())
        else:
            raise TypeError(f"unknown role {role!r} (expected matcher or unknown_sender)")
    return tuple(classes)
