//! "Test settings": checks an account step by step — resolve, TCP connect,
//! TLS, capabilities, login, folders — and says exactly which step failed and
//! what to change. Used by `intake account test` and, later, the API.

use std::time::Duration;

use serde::Serialize;

use super::net::{self, NetError, TlsInfo};
use super::{
    AccountSettings, FetchError, FolderCursor, MailSource, Protocol, Security, imap, pop3,
};

/// One step of the check.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    /// `resolve`, `connect`, `tls`, `capabilities`, `login` or `folder`.
    pub name: &'static str,
    /// Whether it passed.
    pub ok: bool,
    /// What was found (addresses, TLS details, counts) or what failed.
    pub detail: String,
    /// What to change, when it failed (or when it passed with a warning).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

/// The whole check.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// Steps in order; the first failure is the last step.
    pub steps: Vec<Step>,
}

impl Report {
    /// True if every step passed.
    pub fn ok(&self) -> bool {
        self.steps.iter().all(|s| s.ok)
    }

    fn pass(&mut self, name: &'static str, detail: impl Into<String>) {
        self.steps.push(Step {
            name,
            ok: true,
            detail: detail.into(),
            hint: None,
        });
    }

    fn warn(&mut self, name: &'static str, detail: impl Into<String>, hint: impl Into<String>) {
        self.steps.push(Step {
            name,
            ok: true,
            detail: detail.into(),
            hint: Some(hint.into()),
        });
    }

    fn fail(
        &mut self,
        name: &'static str,
        detail: impl Into<String>,
        hint: impl Into<String>,
    ) -> Report {
        self.steps.push(Step {
            name,
            ok: false,
            detail: detail.into(),
            hint: Some(hint.into()),
        });
        std::mem::take(self)
    }
}

fn tls_detail(info: &TlsInfo) -> String {
    format!(
        "{} {}; certificate subject \"{}\", issuer \"{}\", expires {}; {}",
        info.protocol,
        info.cipher,
        info.subject,
        info.issuer,
        info.not_after,
        if info.verified {
            "verified"
        } else {
            "NOT verified (verification skipped by this account's setting)"
        }
    )
}

fn usual_ports(settings: &AccountSettings) -> &'static str {
    match settings.protocol {
        Protocol::Imap => "IMAP uses 143 for none/STARTTLS and 993 for TLS",
        Protocol::Pop3 => "POP3 uses 110 for none/STARTTLS and 995 for TLS",
    }
}

/// Hint for a failure at the network or TLS level.
fn net_hint(settings: &AccountSettings, e: &NetError) -> String {
    let port = settings.effective_port();
    match e {
        NetError::Resolve { .. } => "check the host name (and this machine's DNS)".into(),
        NetError::Connect { source, .. } if source.kind() == std::io::ErrorKind::ConnectionRefused => {
            format!("nothing accepts connections on port {port}: check the port ({})", usual_ports(settings))
        }
        NetError::Connect { .. } | NetError::ConnectTimeout { .. } => {
            format!("the server cannot be reached on port {port}: check host, port and firewall, or the network connector")
        }
        NetError::Proxy { .. } => "check the network connector (SOCKS5 proxy) address and credentials".into(),
        NetError::Certificate { reason, .. } if reason.contains("UnknownIssuer") => {
            "the certificate is self-signed or from a private CA: give the CA file, or (knowingly) skip certificate verification".into()
        }
        NetError::Certificate { reason, .. } if reason.contains("Expired") => {
            "the server's certificate has expired: the provider must renew it".into()
        }
        NetError::Certificate { reason, .. } if reason.contains("NotValidForName") => {
            format!("the certificate does not name {}: use the host name the certificate was issued for", settings.host)
        }
        NetError::Certificate { .. } => "the certificate was not accepted: check the CA file or the server's certificate".into(),
        NetError::Tls { .. } | NetError::TlsTimeout { .. } => format!(
            "port {port} does not seem to speak TLS from the first byte: use STARTTLS or none on this port, or the TLS port ({})",
            usual_ports(settings)
        ),
        NetError::CaFile { .. } => "give a readable PEM file with the CA certificate(s)".into(),
        NetError::StartTlsNotOffered { .. } => format!(
            "the server does not offer STARTTLS on port {port}: use TLS ({}); Intake never falls back to plain text",
            usual_ports(settings)
        ),
        NetError::IdleTimeout(_) => format!(
            "the server sent nothing: if port {port} expects TLS from the first byte, choose security TLS ({})",
            usual_ports(settings)
        ),
        NetError::Io(_) => "the connection broke: check the port and security mode, and the server's logs".into(),
    }
}

fn fetch_hint(settings: &AccountSettings, e: &FetchError) -> String {
    match e {
        FetchError::Net(n) => net_hint(settings, n),
        FetchError::Auth(_) => {
            "the server refused the user name or password (or the mechanism): check the credential"
                .into()
        }
        FetchError::NoSuchFolder { folder, .. } => {
            format!(
                "folder {folder:?} does not exist: check its exact name, including case and hierarchy separator"
            )
        }
        FetchError::Protocol(m) if m.contains("greeting") || m.contains("closed") => format!(
            "this does not look like a {} server on port {}: check protocol and port ({})",
            match settings.protocol {
                Protocol::Imap => "IMAP",
                Protocol::Pop3 => "POP3",
            },
            settings.effective_port(),
            usual_ports(settings)
        ),
        FetchError::Protocol(_) | FetchError::Incomplete { .. } => {
            "the server answered unexpectedly: see its logs".into()
        }
        FetchError::Unsupported(_) => {
            "the server lacks a feature Intake needs for this account".into()
        }
    }
}

/// Runs the check. Never fails: every problem is a failed step.
pub async fn test_account(settings: &AccountSettings) -> Report {
    let mut settings = settings.clone();
    // A wrong security mode often shows as silence; don't wait a minute.
    settings.timeouts.io = settings.timeouts.io.min(Duration::from_secs(10));
    let mut report = Report::default();
    let port = settings.effective_port();

    // resolve
    match &settings.proxy {
        Some(proxy) => report.pass(
            "resolve",
            format!(
                "{} is resolved by the SOCKS5 proxy {}:{}",
                settings.host, proxy.host, proxy.port
            ),
        ),
        None => match net::resolve(&settings.host, port).await {
            Ok(addrs) => report.pass(
                "resolve",
                format!(
                    "{} → {}",
                    settings.host,
                    addrs
                        .iter()
                        .map(|a| a.ip().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ),
            Err(e) => return report.fail("resolve", e.to_string(), net_hint(&settings, &e)),
        },
    }

    // connect
    let stream = match net::connect_tcp(&settings).await {
        Ok((stream, addr)) => {
            let how = match (&settings.proxy, addr) {
                (Some(p), _) => format!(
                    "{}:{port} through the SOCKS5 proxy {}:{}",
                    settings.host, p.host, p.port
                ),
                (None, Some(addr)) => format!("{addr}"),
                (None, None) => format!("{}:{port}", settings.host),
            };
            report.pass("connect", format!("TCP connection to {how}"));
            stream
        }
        Err(e) => return report.fail("connect", e.to_string(), net_hint(&settings, &e)),
    };

    // tls (implicit)
    let (stream, tls) = if settings.security == Security::Tls {
        match stream.start_tls(&settings).await {
            Ok((stream, info)) => {
                tls_step(&mut report, &info);
                (stream, Some(info))
            }
            Err(e) => {
                let mut detail = e.to_string();
                if matches!(e, NetError::Certificate { .. })
                    && let Some(info) = net::inspect_certificate(&settings).await
                {
                    detail = format!(
                        "{detail}; the server presented: subject \"{}\", issuer \"{}\", expires {}",
                        info.subject, info.issuer, info.not_after
                    );
                }
                return report.fail("tls", detail, net_hint(&settings, &e));
            }
        }
    } else {
        (stream, None)
    };

    match settings.protocol {
        Protocol::Imap => check_imap(report, stream, tls, &settings).await,
        Protocol::Pop3 => check_pop3(report, stream, tls, &settings).await,
    }
}

fn tls_step(report: &mut Report, info: &TlsInfo) {
    if info.verified {
        report.pass("tls", tls_detail(info));
    } else {
        report.warn("tls", tls_detail(info), "certificate verification is off for this account: anyone on the path could read the password");
    }
}

fn capability_step(report: &mut Report, settings: &AccountSettings, caps: &[String]) {
    let shown = caps.join(" ");
    if settings.security == Security::None {
        report.warn(
            "capabilities",
            shown,
            "security is none: the password crosses the network in plain text (fine on loopback or inside a tunnel)",
        );
    } else {
        report.pass("capabilities", shown);
    }
}

async fn check_imap(
    mut report: Report,
    stream: net::MailStream,
    tls: Option<TlsInfo>,
    settings: &AccountSettings,
) -> Report {
    let had_tls = tls.is_some();
    let (stream, greeting) = match imap::greet(stream, settings, tls).await {
        Ok(ok) => ok,
        Err(e) => {
            let step = if matches!(
                e,
                FetchError::Net(
                    NetError::StartTlsNotOffered { .. }
                        | NetError::Certificate { .. }
                        | NetError::Tls { .. }
                )
            ) {
                "tls"
            } else {
                "capabilities"
            };
            return report.fail(step, e.to_string(), fetch_hint(settings, &e));
        }
    };
    if !had_tls && let Some(info) = &greeting.tls {
        tls_step(&mut report, info);
    }
    capability_step(&mut report, settings, &greeting.capabilities);
    let mut source = match imap::login(stream, &greeting, settings).await {
        Ok(source) => source,
        Err(e) => return report.fail("login", e.to_string(), fetch_hint(settings, &e)),
    };
    report.pass("login", format!("logged in as {}", settings.username));
    for folder in &settings.folders {
        match source.status(folder).await {
            Ok(status) => report.pass(
                "folder",
                format!(
                    "{folder}: {} messages, {} unseen",
                    status.messages, status.unseen
                ),
            ),
            Err(e) => return report.fail("folder", e.to_string(), fetch_hint(settings, &e)),
        }
    }
    let _ = Box::new(source).close().await;
    report
}

async fn check_pop3(
    mut report: Report,
    stream: net::MailStream,
    tls: Option<TlsInfo>,
    settings: &AccountSettings,
) -> Report {
    // The POP3 client greets, (for STARTTLS) secures and logs in as one
    // step. Plain and implicit-TLS connections are already in their final
    // state, so the one checked above is reused; STARTTLS reconnects, as the
    // client does that upgrade itself.
    drop(tls);
    let opened = match settings.security {
        Security::Starttls => {
            drop(stream);
            pop3::Pop3Source::connect(settings).await
        }
        Security::None | Security::Tls => pop3::Pop3Source::over_stream(stream, settings).await,
    };
    let mut source = match opened {
        Ok(source) => source,
        Err(e) => {
            let step = match &e {
                FetchError::Net(
                    NetError::StartTlsNotOffered { .. }
                    | NetError::Certificate { .. }
                    | NetError::Tls { .. },
                ) => "tls",
                FetchError::Auth(_) => "login",
                _ => "capabilities",
            };
            return report.fail(step, e.to_string(), fetch_hint(settings, &e));
        }
    };
    report.pass("login", format!("logged in as {}", settings.username));
    if let Some(folder) = settings
        .folders
        .iter()
        .find(|f| !f.eq_ignore_ascii_case("INBOX"))
    {
        return report.fail(
            "folder",
            format!("POP3 has only the inbox; {folder:?} cannot be read"),
            "list only INBOX for POP3 accounts, or use IMAP to read other folders",
        );
    }
    match source.list("INBOX", &FolderCursor::default()).await {
        Ok(listing) => report.pass(
            "folder",
            format!(
                "INBOX: {} messages{} (POP3 has no unseen flag)",
                listing.new.len() + listing.too_large.len(),
                if listing.too_large.is_empty() {
                    String::new()
                } else {
                    format!(", {} over the size limit", listing.too_large.len())
                }
            ),
        ),
        Err(e) => return report.fail("folder", e.to_string(), fetch_hint(settings, &e)),
    }
    let _ = Box::new(source).close().await;
    report
}
