"""exact-match, in Python: attaches a message to the contacts and leads
whose address appears on it (sender and recipients), compared
case-insensitively, with optional plus-address folding (``ann+news@x`` ->
``ann@x``). A port of ``plugins/exact-match`` (Rust) that decides the same
way; the tests hold the two (and the JavaScript port) to it.

Configuration (all optional)::

    { "fields": ["from", "sender", "reply-to", "to", "cc"],
      "fold_plus": false,
      "ignore": ["sales@our-company.example"] }

``ignore`` lists addresses never matched, typically the mailbox's own.
"""

import intake_plugin
from intake_plugin import Error, Plugin, Verdict, address

FIELDS = ("from", "sender", "reply-to", "to", "cc")


class ExactMatch(Plugin):
    CONFIG = {"fields": "array", "fold_plus": "boolean", "ignore": "array"}

    def __init__(self, config):
        self.fields = config.get("fields", list(FIELDS))
        for field in self.fields:
            if field not in FIELDS:
                raise Error(
                    f"invalid configuration: unknown variant `{field}`, expected one of "
                    + ", ".join(f"`{f}`" for f in FIELDS)
                )
        if not self.fields:
            raise Error("`fields` is empty: nothing would ever match")
        self.fold_plus = config.get("fold_plus", False)
        self.ignore = [address.normalize(a) for a in config.get("ignore", [])]

    def addresses(self, message):
        for field in self.fields:
            if field == "from":
                yield from message.from_
            elif field == "sender":
                if message.sender is not None:
                    yield message.sender
            elif field == "reply-to":
                yield from message.reply_to
            elif field == "to":
                yield from message.to
            else:
                yield from message.cc

    def match(self, message, directory):
        seen = []
        parties = []
        for mailbox in self.addresses(message):
            addr = address.normalize(mailbox.address)
            if not addr or addr in seen or addr in self.ignore:
                continue
            found = directory.find_by_address(addr).parties
            if not found and self.fold_plus:
                folded = address.fold_plus(addr)
                if folded != addr and folded not in self.ignore:
                    found = directory.find_by_address(folded).parties
            seen.append(addr)
            for party in found:
                ref = party.to_ref()
                if ref not in parties:
                    parties.append(ref)
        return Verdict.attach(parties)


Lifecycle, Matcher = intake_plugin.export(ExactMatch, "matcher")
