"""Helpers for e-mail addresses, the same rules as the Rust SDK's
``intake_plugin_sdk::address``: domain, normalisation, plus-address folding,
free-mail providers and robot senders.

``normalize`` trims exactly the characters Rust's ``str::trim`` trims (Unicode
White_Space) and lower-cases with full Unicode case mapping, so a Python
plugin compares addresses as a Rust one does.
"""

from typing import Optional

# Unicode White_Space, the set Rust's `str::trim` removes. Python's
# `str.strip()` also removes U+001C..U+001F, which Rust keeps.
_WHITE_SPACE = (
    "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005"
    "\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)

FREE_MAIL_DOMAINS = (
    "aol.com", "gmail.com", "googlemail.com", "gmx.com", "gmx.de", "gmx.net",
    "hotmail.com", "hotmail.co.uk", "icloud.com", "live.com", "mail.com",
    "mail.ru", "me.com", "msn.com", "outlook.com", "proton.me",
    "protonmail.com", "qq.com", "web.de", "yahoo.com", "yahoo.co.uk",
    "yandex.ru", "zoho.com",
)
"""Free-mail and consumer providers whose domain says nothing about a company."""

_ROBOTS = frozenset((
    "mailer-daemon", "postmaster", "noreply", "no-reply", "no_reply",
    "donotreply", "do-not-reply", "do_not_reply", "bounce", "bounces",
))


def trim(text: str) -> str:
    """``text`` without leading and trailing Unicode White_Space."""
    return text.strip(_WHITE_SPACE)


def normalize(address: str) -> str:
    """Lower-cases an address and trims white space, for comparisons."""
    return trim(address).lower()


def _split(address: str):
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain:
        return None
    return local, domain


def domain(address: str) -> Optional[str]:
    """The domain part of an address (after the last ``@``), if there is one."""
    parts = _split(address)
    return parts[1] if parts else None


def local_part(address: str) -> Optional[str]:
    """The local part of an address (before the last ``@``)."""
    parts = _split(address)
    return parts[0] if parts else None


def fold_plus(address: str) -> str:
    """Folds a plus-address (``ann+news@x`` -> ``ann@x``) and lower-cases it.
    Addresses without a tag are only normalised."""
    address = normalize(address)
    local, at, dom = address.rpartition("@")
    if not at:
        return address
    base, plus, _tag = local.partition("+")
    if plus and base:
        return f"{base}@{dom}"
    return address


def is_valid(address: str) -> bool:
    """True if the engine will accept ``address`` for a new lead: a non-empty
    local part and domain around the last ``@``, at most 254 bytes, and no
    white space or control characters."""
    address = trim(address)
    if len(address.encode("utf-8")) > 254 or _split(address) is None:
        return False
    return not any(c in _WHITE_SPACE or ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in address)


def is_free_mail(domain_name: str) -> bool:
    """True if ``domain_name`` is one of :data:`FREE_MAIL_DOMAINS` (ASCII
    case-insensitive)."""
    return _ascii_lower(domain_name) in FREE_MAIL_DOMAINS


def is_robot(address: str) -> bool:
    """True for addresses that are never a person: ``MAILER-DAEMON``,
    ``postmaster`` and the usual ``no-reply`` spellings."""
    local = local_part(address)
    if local is None:
        return False
    return _ascii_lower(local).split("+")[0] in _ROBOTS


def _ascii_lower(text: str) -> str:
    # Rust's `to_ascii_lowercase` leaves non-ASCII letters alone.
    return "".join(c.lower() if c.isascii() else c for c in text)
