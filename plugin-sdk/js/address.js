// Helpers for e-mail addresses, the same rules as the Rust SDK's
// `intake_plugin_sdk::address`: domain, normalisation, plus-address folding,
// free-mail providers and robot senders.
//
// `normalize` trims exactly the characters Rust's `str::trim` trims (Unicode
// White_Space; JavaScript's `trim()` also removes U+FEFF and keeps U+0085)
// and lower-cases with full Unicode case mapping, so a JavaScript plugin
// compares addresses as a Rust one does.

const WHITE_SPACE =
  '\t\n\u000b\u000c\r \u0085\u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005' +
  '\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000';

/** Free-mail and consumer providers whose domain says nothing about a company. */
export const FREE_MAIL_DOMAINS = Object.freeze([
  'aol.com', 'gmail.com', 'googlemail.com', 'gmx.com', 'gmx.de', 'gmx.net',
  'hotmail.com', 'hotmail.co.uk', 'icloud.com', 'live.com', 'mail.com',
  'mail.ru', 'me.com', 'msn.com', 'outlook.com', 'proton.me',
  'protonmail.com', 'qq.com', 'web.de', 'yahoo.com', 'yahoo.co.uk',
  'yandex.ru', 'zoho.com',
]);

const ROBOTS = new Set([
  'mailer-daemon', 'postmaster', 'noreply', 'no-reply', 'no_reply',
  'donotreply', 'do-not-reply', 'do_not_reply', 'bounce', 'bounces',
]);

/** `text` without leading and trailing Unicode White_Space. */
export function trim(text) {
  let start = 0;
  let end = text.length;
  while (start < end && WHITE_SPACE.includes(text[start])) start++;
  while (end > start && WHITE_SPACE.includes(text[end - 1])) end--;
  return text.slice(start, end);
}

// The engine's regular expressions have no Unicode property classes
// (\p{Cased} is a syntax error there), so: a letter is cased if it has
// another case, and the case-ignorable characters are the usual word-internal
// punctuation and the combining diacritics.
const CASE_IGNORABLE = /[.:'`^\u00ad\u00b7\u0300-\u036f\u2018\u2019\u2024\u2027\ufe13\ufe52\ufe55\uff07\uff0e\uff1a]/;

function isCased(c) {
  return c.toLowerCase() !== c || c.toUpperCase() !== c;
}

// Is there a cased letter next to position `i`, looking in direction `step`
// past case-ignorable characters?
function casedBeside(chars, i, step) {
  for (let j = i + step; j >= 0 && j < chars.length; j += step) {
    if (CASE_IGNORABLE.test(chars[j])) continue;
    return isCased(chars[j]);
  }
  return false;
}

/**
 * Full Unicode lower-casing as Rust's `str::to_lowercase` and Python's
 * `str.lower` do it. The engine's `toLowerCase` leaves out the one
 * context-dependent rule, a final capital sigma (ΟΔΟΣ -> οδος), so that is
 * applied here.
 */
export function lowerCase(text) {
  if (!text.includes('\u03a3')) return text.toLowerCase();
  const chars = [...text];
  return chars
    .map((c, i) => {
      if (c !== '\u03a3') return c.toLowerCase();
      const final = casedBeside(chars, i, -1) && !casedBeside(chars, i, 1);
      return final ? '\u03c2' : '\u03c3';
    })
    .join('');
}

/** Lower-cases an address and trims white space, for comparisons. */
export function normalize(address) {
  return lowerCase(trim(address));
}

function split(address) {
  const at = address.lastIndexOf('@');
  if (at <= 0 || at === address.length - 1) return null;
  return [address.slice(0, at), address.slice(at + 1)];
}

/** The domain part of an address (after the last `@`), or null. */
export function domain(address) {
  const parts = split(address);
  return parts ? parts[1] : null;
}

/** The local part of an address (before the last `@`), or null. */
export function localPart(address) {
  const parts = split(address);
  return parts ? parts[0] : null;
}

/** Folds a plus-address (`ann+news@x` -> `ann@x`) and lower-cases it. */
export function foldPlus(address) {
  const normal = normalize(address);
  const at = normal.lastIndexOf('@');
  if (at < 0) return normal;
  const local = normal.slice(0, at);
  const plus = local.indexOf('+');
  if (plus > 0) return `${local.slice(0, plus)}@${normal.slice(at + 1)}`;
  return normal;
}

/**
 * True if the engine will accept `address` for a new lead: a non-empty local
 * part and domain around the last `@`, at most 254 bytes, and no white space
 * or control characters.
 */
export function isValid(address) {
  const a = trim(address);
  if (new TextEncoder().encode(a).length > 254 || split(a) === null) return false;
  for (const c of a) {
    const code = c.codePointAt(0);
    if (WHITE_SPACE.includes(c) || code < 0x20 || (code >= 0x7f && code < 0xa0)) return false;
  }
  return true;
}

// Rust's `to_ascii_lowercase`: non-ASCII letters stay as they are.
function asciiLower(text) {
  return text.replace(/[A-Z]/g, (c) => c.toLowerCase());
}

/** True if `domainName` is one of FREE_MAIL_DOMAINS (ASCII case-insensitive). */
export function isFreeMail(domainName) {
  return FREE_MAIL_DOMAINS.includes(asciiLower(domainName));
}

/** True for addresses that are never a person: `MAILER-DAEMON`, `postmaster`, `no-reply`... */
export function isRobot(address) {
  const local = localPart(address);
  if (local === null) return false;
  return ROBOTS.has(asciiLower(local).split('+')[0]);
}
