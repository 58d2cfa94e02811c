//! One normalisation for what the directory is keyed by — addresses,
//! domains and Message-IDs — used by every directory (the store's and the
//! in-memory one of `intake plugin test`), so a look-up answers the same
//! whichever directory serves it.

/// An address as the directory keys it: trimmed and lower-cased (Unicode
/// lower case, so `Björn@X` and `björn@x` are one address).
pub fn address(address: &str) -> String {
    address.trim().to_lowercase()
}

/// A domain as the directory keys it: trimmed, without a leading `@` or a
/// trailing root `.`, lower-cased. `@Acme.example.` → `acme.example`.
pub fn domain(domain: &str) -> String {
    let d = domain.trim();
    let d = d.strip_prefix('@').unwrap_or(d);
    let d = d.strip_suffix('.').unwrap_or(d);
    d.trim().to_lowercase()
}

/// The domain of an address (after the last `@`), normalised; `None` when
/// there is no `@`.
pub fn domain_of(address: &str) -> Option<String> {
    address.rsplit_once('@').map(|(_, d)| domain(d))
}

/// A Message-ID as stored and looked up: no blanks, no angle brackets;
/// `None` if nothing is left.
pub fn message_id(id: &str) -> Option<String> {
    let id = id.trim();
    let id = id.strip_prefix('<').unwrap_or(id);
    let id = id.strip_suffix('>').unwrap_or(id).trim();
    (!id.is_empty()).then(|| id.to_owned())
}

/// The rule every stored address must pass: a non-empty local part and
/// domain around the last `@`, at most 254 bytes, no white space or control
/// characters. One implementation, the SDK's, which plugins call as
/// `address::is_valid`.
pub use intake_plugin_sdk::rules::is_valid_address;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_form_for_each_key() {
        assert_eq!(address("  Björn@ACME.example "), "björn@acme.example");
        assert_eq!(domain("@Acme.Example."), "acme.example");
        assert_eq!(domain(" ÅRE.example"), "åre.example");
        assert_eq!(domain_of("a@B.example").as_deref(), Some("b.example"));
        assert_eq!(domain_of("nobody"), None);
        assert_eq!(message_id(" <a@b> ").as_deref(), Some("a@b"));
        assert_eq!(message_id("a@b").as_deref(), Some("a@b"));
        assert_eq!(message_id("<>"), None);
        assert!(is_valid_address("björn@acme.com"));
        assert!(!is_valid_address("@acme.com"));
    }
}
