//! One classification of retrieval failures and one set of hints, shared by
//! "Test settings" ([`super::check`]), `intake fetch`'s summary and, later,
//! the service's account state. A user reads *what* failed in the error's
//! `Display` and *what to do* in its hint; both come from here, so the same
//! failure is never explained two ways.

use serde::Serialize;

use super::net::{CertificateProblem, NetError, PresentedCertificate};
use super::{AccountSettings, FetchError, Protocol, Security};

/// What kind of failure an account has, for grouping and for deciding
/// whether a retry can help. The pipeline will add its own (plugin, chain),
/// so matches on it must keep a wildcard arm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum FailureClass {
    /// The server refused the credentials or the mechanism.
    Auth,
    /// The certificate was not accepted, or the TLS hand-shake failed (the
    /// security mode does not match the port, a missing STARTTLS…).
    Tls,
    /// The server could not be reached, or was too slow or silent.
    Network,
    /// The server is there and the settings are right, but it refuses for
    /// now: mailbox in use, too many connections, temporary trouble.
    Busy,
    /// The server broke the protocol or refused a command, a folder is
    /// missing, or it lacks something the account needs.
    Protocol,
}

impl FetchError {
    /// The class of this failure.
    pub fn class(&self) -> FailureClass {
        match self {
            FetchError::Net(n) => match n {
                NetError::Certificate { .. }
                | NetError::Tls { .. }
                | NetError::TlsTimeout { .. }
                | NetError::CaFile { .. }
                | NetError::StartTlsNotOffered { .. } => FailureClass::Tls,
                _ => FailureClass::Network,
            },
            FetchError::Auth(_) => FailureClass::Auth,
            FetchError::Busy(_) => FailureClass::Busy,
            FetchError::Protocol(_)
            | FetchError::NoSuchFolder { .. }
            | FetchError::Incomplete { .. }
            | FetchError::Unsupported(_) => FailureClass::Protocol,
        }
    }

    /// What to do about it, without the account at hand (the port and
    /// protocol are then described in general terms).
    pub fn hint(&self) -> String {
        hint(self, None)
    }

    /// What to do about it, naming the account's port and protocol.
    pub fn hint_for(&self, settings: &AccountSettings) -> String {
        hint(self, Some(settings))
    }
}

/// The hint for a failed account run, found anywhere in an error's source
/// chain: `None` when no retrieval error is in it (a store failure…).
pub fn hint_in_chain(error: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut current = Some(error);
    while let Some(e) = current {
        if let Some(fetch) = e.downcast_ref::<FetchError>() {
            return Some(fetch.hint());
        }
        current = e.source();
    }
    None
}

/// The hint as a line to print under a `FAILED:` line (indented to the
/// CLI's account column), or nothing when there is none.
pub fn hint_line(error: &(dyn std::error::Error + 'static)) -> String {
    hint_in_chain(error).map_or_else(String::new, |hint| format!("\n{:16} hint: {hint}", ""))
}

fn usual_ports(settings: Option<&AccountSettings>) -> &'static str {
    match settings.map(|s| s.protocol) {
        Some(Protocol::Imap) => "IMAP uses 143 for none/STARTTLS and 993 for TLS",
        Some(Protocol::Pop3) => "POP3 uses 110 for none/STARTTLS and 995 for TLS",
        None => "IMAP uses 143/993, POP3 110/995 for STARTTLS/TLS",
    }
}

fn the_port(settings: Option<&AccountSettings>) -> String {
    settings.map_or_else(
        || "this port".to_string(),
        |s| format!("port {}", s.effective_port()),
    )
}

fn net_hint(settings: Option<&AccountSettings>, e: &NetError) -> String {
    let port = the_port(settings);
    let ports = usual_ports(settings);
    match e {
        NetError::Resolve { .. } => "check the host name (and this machine's DNS)".into(),
        NetError::Connect { source, .. }
            if source.kind() == std::io::ErrorKind::ConnectionRefused =>
        {
            format!("nothing accepts connections on {port}: check the port ({ports})")
        }
        NetError::Connect { .. } | NetError::ConnectTimeout { .. } => format!(
            "the server cannot be reached on {port}: check host, port and firewall, or the network connector"
        ),
        NetError::Proxy { .. } => {
            "check the network connector (SOCKS5 proxy) address and credentials".into()
        }
        NetError::Certificate {
            problem, presented, ..
        } => match problem {
            CertificateProblem::UnknownIssuer => format!(
                "the certificate is self-signed or from a private CA: if it is your server's, pin it ({}), \
                 or give the CA file",
                pin_advice(presented.as_deref())
            ),
            CertificateProblem::CaUsedAsEndEntity => format!(
                "the server presents a CA certificate as its own (what `openssl req -x509` makes), which \
                 CA-based verification refuses. If it is your server's, pin it ({}); or give the server a \
                 certificate issued by that CA (CA:FALSE) and give the CA as the CA file",
                pin_advice(presented.as_deref())
            ),
            CertificateProblem::PinMismatch => "the server's certificate is not the one this account pins: \
                 if the server's certificate was renewed on purpose, check the new fingerprint with the \
                 server's admin and pin it; otherwise something on the path is impersonating the server"
                .into(),
            CertificateProblem::Expired => {
                "the server's certificate has expired: the provider must renew it".into()
            }
            CertificateProblem::NotYetValid => {
                "the server's certificate is not valid yet: check this machine's clock".into()
            }
            CertificateProblem::WrongName => {
                let host = settings.map_or("the configured host", |s| s.host.as_str());
                format!(
                    "the certificate does not name {host}: use the host name the certificate was issued for"
                )
            }
            CertificateProblem::Other => {
                "the certificate was not accepted: check the CA file or the server's certificate".into()
            }
        },
        NetError::Tls { .. } | NetError::TlsTimeout { .. } => format!(
            "{port} does not seem to speak TLS from the first byte: use STARTTLS or none on this port, or the TLS \
             port ({ports})"
        ),
        NetError::CaFile { .. } => "give a readable PEM file with the CA certificate(s)".into(),
        NetError::StartTlsNotOffered { .. } => format!(
            "the server does not offer STARTTLS on {port}: use TLS ({ports}); Intake never falls back to plain text"
        ),
        NetError::IdleTimeout(_) if settings.is_some_and(|s| s.security == Security::Tls) => format!(
            "the TLS hand-shake succeeded but the server then sent nothing: check that {port} is the mail \
             protocol's TLS port ({ports}), or that the server is not overloaded"
        ),
        NetError::IdleTimeout(_) if settings.is_some() => format!(
            "the server sent nothing: if {port} expects TLS from the first byte, choose security TLS ({ports})"
        ),
        NetError::IdleTimeout(_) => format!(
            "the server sent nothing: check the security mode for {port} ({ports}) and the server's load"
        ),
        NetError::TooSlow { .. } | NetError::StepDeadline { .. } => "the server (or the network to it) is far too slow; try again later, \
             and tell the provider if it persists"
            .into(),
        NetError::Io(_) => {
            "the connection broke: check the port and security mode, and the server's logs".into()
        }
    }
}

/// How to pin the presented certificate: the exact option when the
/// fingerprint is known.
fn pin_advice(presented: Option<&PresentedCertificate>) -> String {
    presented.map_or_else(
        || "run Test settings to see its fingerprint, then --pin-certificate sha256:…".into(),
        |p| format!("--pin-certificate {}", p.fingerprint),
    )
}

fn hint(e: &FetchError, settings: Option<&AccountSettings>) -> String {
    match e {
        FetchError::Net(n) => net_hint(settings, n),
        FetchError::Auth(_) => {
            "the server refused the user name or password (or the mechanism): check the credential"
                .into()
        }
        FetchError::Busy(_) => "the server refuses for now (mailbox in use, too many connections, \
             temporary trouble): nothing to change in the settings; the next run will try again"
            .into(),
        FetchError::NoSuchFolder { folder, .. } => format!(
            "folder {folder:?} does not exist: check its exact name, including case and hierarchy separator"
        ),
        FetchError::Protocol(m) if m.contains("greeting") => format!(
            "this does not look like a {} server on {}: check protocol and port ({})",
            match settings.map(|s| s.protocol) {
                Some(Protocol::Imap) => "IMAP",
                Some(Protocol::Pop3) => "POP3",
                None => "mail",
            },
            the_port(settings),
            usual_ports(settings)
        ),
        FetchError::Protocol(_) | FetchError::Incomplete { .. } => {
            "the server answered something Intake cannot trust; nothing of the failed step was \
             stored or changed on the server. If it persists, see the server's logs"
                .into()
        }
        FetchError::Unsupported(_) => {
            "the server lacks a feature Intake needs for this account".into()
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::fetch::Secret;

    fn account(security: Security) -> AccountSettings {
        AccountSettings::new(
            "a",
            Protocol::Imap,
            "mail.example",
            security,
            "u",
            Secret::new("p"),
        )
    }

    #[test]
    fn classes() {
        let tls = FetchError::Net(NetError::Tls {
            host: "h".into(),
            reason: "InvalidContentType".into(),
        });
        assert_eq!(tls.class(), FailureClass::Tls);
        assert!(tls.hint().contains("STARTTLS"), "{}", tls.hint());
        assert_eq!(FetchError::Auth("x".into()).class(), FailureClass::Auth);
        assert_eq!(FetchError::Busy("x".into()).class(), FailureClass::Busy);
        assert_eq!(
            FetchError::Net(NetError::IdleTimeout(Duration::from_secs(1))).class(),
            FailureClass::Network
        );
        assert_eq!(
            FetchError::Protocol("x".into()).class(),
            FailureClass::Protocol
        );
    }

    #[test]
    fn silence_after_tls_does_not_ask_for_tls() {
        let e = FetchError::Net(NetError::IdleTimeout(Duration::from_secs(10)));
        let on_tls = e.hint_for(&account(Security::Tls));
        assert!(!on_tls.contains("choose security TLS"), "{on_tls}");
        let plain = e.hint_for(&account(Security::None));
        assert!(plain.contains("choose security TLS"), "{plain}");
    }

    #[test]
    fn the_hint_is_found_through_a_wrapper() {
        #[derive(Debug, thiserror::Error)]
        #[error("retrieval: {0}")]
        struct Wrapper(#[from] FetchError);
        let e = Wrapper(FetchError::Net(NetError::Tls {
            host: "h".into(),
            reason: "r".into(),
        }));
        assert!(hint_in_chain(&e).unwrap().contains("STARTTLS"));
    }
}
