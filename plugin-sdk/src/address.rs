//! Helpers for e-mail addresses: domain, normalisation, plus-address folding
//! and the common free-mail providers.

/// The domain part of an address (after the last `@`), if there is one.
///
/// ```
/// assert_eq!(intake_plugin_sdk::address::domain("Ann@Example.COM"), Some("Example.COM"));
/// assert_eq!(intake_plugin_sdk::address::domain("nobody"), None);
/// ```
pub fn domain(address: &str) -> Option<&str> {
    let (local, domain) = address.rsplit_once('@')?;
    (!local.is_empty() && !domain.is_empty()).then_some(domain)
}

/// The local part of an address (before the last `@`).
pub fn local_part(address: &str) -> Option<&str> {
    let (local, domain) = address.rsplit_once('@')?;
    (!local.is_empty() && !domain.is_empty()).then_some(local)
}

/// True if the engine will accept `address` for a new lead: a non-empty
/// local part and domain around the last `@`, at most 254 bytes, and no
/// white space or control characters. The engine applies the same rule to
/// every `create-lead`; a policy that checks first can keep the message
/// unlinked with a logged reason instead of having it quarantined as
/// malformed.
///
/// ```
/// use intake_plugin_sdk::address::is_valid;
/// assert!(is_valid("björn@acme.com"));
/// assert!(!is_valid("@acme.com"));
/// assert!(!is_valid("a b@acme.com"));
/// ```
pub fn is_valid(address: &str) -> bool {
    crate::rules::is_valid_address(address)
}

/// Lower-cases an address and trims white space, for comparisons.
pub fn normalize(address: &str) -> String {
    address.trim().to_lowercase()
}

/// Folds a plus-address (`ann+news@example.com` → `ann@example.com`) and
/// lower-cases it. Addresses without a tag are only normalised.
///
/// ```
/// use intake_plugin_sdk::address::fold_plus;
/// assert_eq!(fold_plus("Ann+News@Example.com"), "ann@example.com");
/// assert_eq!(fold_plus("+x@example.com"), "+x@example.com");
/// ```
pub fn fold_plus(address: &str) -> String {
    let address = normalize(address);
    match address.rsplit_once('@') {
        Some((local, domain)) => match local.split_once('+') {
            Some((base, _tag)) if !base.is_empty() => format!("{base}@{domain}"),
            _ => address,
        },
        None => address,
    }
}

/// Free-mail and consumer providers whose domain says nothing about a
/// company. Plugins use it as the default for their configurable lists.
pub const FREE_MAIL_DOMAINS: &[&str] = &[
    "aol.com",
    "gmail.com",
    "googlemail.com",
    "gmx.com",
    "gmx.de",
    "gmx.net",
    "hotmail.com",
    "hotmail.co.uk",
    "icloud.com",
    "live.com",
    "mail.com",
    "mail.ru",
    "me.com",
    "msn.com",
    "outlook.com",
    "proton.me",
    "protonmail.com",
    "qq.com",
    "web.de",
    "yahoo.com",
    "yahoo.co.uk",
    "yandex.ru",
    "zoho.com",
];

/// True if `domain` is one of [`FREE_MAIL_DOMAINS`] (case-insensitive).
pub fn is_free_mail(domain: &str) -> bool {
    FREE_MAIL_DOMAINS
        .iter()
        .any(|d| d.eq_ignore_ascii_case(domain))
}

/// True for addresses that are never a person: `MAILER-DAEMON`, `postmaster`,
/// and the usual `no-reply` spellings.
///
/// ```
/// use intake_plugin_sdk::address::is_robot;
/// assert!(is_robot("MAILER-DAEMON@mx.example.com"));
/// assert!(is_robot("no_reply@shop.example"));
/// assert!(!is_robot("noreen@example.com"));
/// ```
pub fn is_robot(address: &str) -> bool {
    let Some(local) = local_part(address) else {
        return false;
    };
    let local = local.to_ascii_lowercase();
    let local = local.split('+').next().unwrap_or_default();
    matches!(
        local,
        "mailer-daemon"
            | "postmaster"
            | "noreply"
            | "no-reply"
            | "no_reply"
            | "donotreply"
            | "do-not-reply"
            | "do_not_reply"
            | "bounce"
            | "bounces"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domain_and_local_part() {
        assert_eq!(domain("a@b.c"), Some("b.c"));
        assert_eq!(domain("\"a@x\"@b.c"), Some("b.c"));
        assert_eq!(domain("@b.c"), None);
        assert_eq!(domain("a@"), None);
        assert_eq!(local_part("a.b@c"), Some("a.b"));
    }

    #[test]
    fn plus_folding() {
        assert_eq!(fold_plus("a+b+c@x.org"), "a@x.org");
        assert_eq!(fold_plus("plain@x.org"), "plain@x.org");
        assert_eq!(fold_plus("no-at-sign"), "no-at-sign");
    }

    #[test]
    fn free_mail_and_robots() {
        assert!(is_free_mail("GMAIL.com"));
        assert!(!is_free_mail("acme.example"));
        assert!(is_robot("Postmaster@acme.example"));
        assert!(is_robot("noreply+123@acme.example"));
        assert!(!is_robot("reply@acme.example"));
    }
}
