//! "Test settings": checks an account step by step — resolve, TCP connect,
//! TLS, capabilities, login, folders — and says exactly which step failed and
//! what to change. Used by `intake account test`, the API, and the
//! console, which shows each step as it is made ([`test_account_live`]).

use std::time::Duration;

use serde::Serialize;

/// The most any one step may take: a wrong security mode often shows as
/// silence, and nobody should wait a minute to learn that.
pub const STEP_LIMIT: Duration = Duration::from_secs(10);

use super::net::{self, NetError, TlsInfo};
use super::{
    AccountSettings, FetchError, FolderCursor, MailSource, Protocol, Security, imap, pop3,
};

/// One step of the check.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
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
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct Report {
    /// Steps in order; the first failure is the last step.
    pub steps: Vec<Step>,
    /// Where the steps are shown as they are made, if anywhere.
    #[serde(skip)]
    watcher: Option<tokio::sync::watch::Sender<Live>>,
}

/// A check as it runs, for a display that shows each step as it happens
/// ([`test_account_live`]).
#[derive(Debug, Clone, Default)]
pub struct Live {
    /// The steps made so far.
    pub steps: Vec<Step>,
    /// The step under way.
    pub running: Option<&'static str>,
    /// The check is over: `steps` is the whole report.
    pub done: bool,
}

impl Report {
    /// A report whose only step failed before any connection was made
    /// (no access token to sign in with, …).
    pub fn failed_at(name: &'static str, detail: String, hint: &str) -> Report {
        Report::default().fail(name, detail, hint)
    }

    /// True if every step passed.
    pub fn ok(&self) -> bool {
        self.steps.iter().all(|s| s.ok)
    }

    /// Says which step is under way.
    fn begin(&mut self, name: &'static str) {
        if let Some(w) = &self.watcher {
            w.send_modify(|live| live.running = Some(name));
        }
    }

    fn push(&mut self, step: Step) {
        if let Some(w) = &self.watcher {
            w.send_modify(|live| {
                live.steps.push(step.clone());
                live.running = None;
            });
        }
        self.steps.push(step);
    }

    fn pass(&mut self, name: &'static str, detail: impl Into<String>) {
        self.push(Step {
            name,
            ok: true,
            detail: detail.into(),
            hint: None,
        });
    }

    fn warn(&mut self, name: &'static str, detail: impl Into<String>, hint: impl Into<String>) {
        self.push(Step {
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
        self.push(Step {
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
        "{} {}; certificate subject \"{}\", issuer \"{}\", expires {}, {}; {}",
        info.protocol,
        info.cipher,
        info.subject,
        info.issuer,
        info.not_after,
        info.fingerprint,
        if info.pinned {
            "verified by this account's pin (exactly this certificate)"
        } else if info.verified {
            "verified"
        } else {
            "NOT verified (verification skipped by this account's setting)"
        }
    )
}

/// Fails a step that does not finish within the limit "Test settings"
/// promises, however the server trickles its bytes.
async fn within<T>(
    limit: Duration,
    step: &'static str,
    work: impl std::future::Future<Output = Result<T, FetchError>>,
) -> Result<T, FetchError> {
    match tokio::time::timeout(limit, work).await {
        Ok(result) => result,
        Err(_) => Err(NetError::StepDeadline { step, after: limit }.into()),
    }
}

/// Runs the check. Never fails: every problem is a failed step.
pub async fn test_account(settings: &AccountSettings) -> Report {
    run(settings, Report::default()).await
}

/// [`test_account`], showing each step on `live` as it is made (the
/// console's Test settings page polls it). `live` ends with `done` set and
/// the whole report.
pub async fn test_account_live(
    settings: &AccountSettings,
    live: tokio::sync::watch::Sender<Live>,
) -> Report {
    let mut report = run(
        settings,
        Report {
            steps: Vec::new(),
            watcher: Some(live.clone()),
        },
    )
    .await;
    report.watcher = None;
    finish_live(&live, &report);
    report
}

/// Ends a live display with the whole `report` (also for a report made
/// without running the check, such as a sign-in that had no token).
pub fn finish_live(live: &tokio::sync::watch::Sender<Live>, report: &Report) {
    live.send_replace(Live {
        steps: report.steps.clone(),
        running: None,
        done: true,
    });
}

async fn run(settings: &AccountSettings, mut report: Report) -> Report {
    let mut settings = settings.clone();
    settings.timeouts.io = settings.timeouts.io.min(STEP_LIMIT);
    settings.timeouts.tls = settings.timeouts.tls.min(STEP_LIMIT);
    let settings = &settings;
    let port = settings.effective_port();

    // resolve
    report.begin("resolve");
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
            Err(e) => {
                return report.fail("resolve", e.to_string(), e_hint(settings, e));
            }
        },
    }

    // connect
    report.begin("connect");
    let stream = match net::connect_tcp(settings).await {
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
        Err(e) => return report.fail("connect", e.to_string(), e_hint(settings, e)),
    };

    // tls (implicit)
    let (stream, tls) = if settings.security == Security::Tls {
        report.begin("tls");
        match stream.start_tls(settings).await {
            Ok((stream, info)) => {
                tls_step(&mut report, &info);
                (stream, Some(info))
            }
            Err(e) => return report.fail("tls", e.to_string(), e_hint(settings, e)),
        }
    } else {
        (stream, None)
    };

    match settings.protocol {
        Protocol::Imap => check_imap(report, stream, tls, settings).await,
        Protocol::Pop3 => check_pop3(report, stream, tls, settings).await,
    }
}

/// The hint for a network-level failure, from the shared [`diagnosis`](super::diagnosis).
fn e_hint(settings: &AccountSettings, e: NetError) -> String {
    FetchError::from(e).hint_for(settings)
}

/// The step a failure before login belongs to: TLS problems are the `tls`
/// step's, the rest the `capabilities` step's (the greeting comes with it).
fn prelogin_step(e: &FetchError) -> &'static str {
    match e {
        FetchError::Net(
            NetError::StartTlsNotOffered { .. }
            | NetError::Certificate { .. }
            | NetError::Tls { .. }
            | NetError::TlsTimeout { .. },
        ) => "tls",
        _ => "capabilities",
    }
}

fn tls_step(report: &mut Report, info: &TlsInfo) {
    if info.verified {
        report.pass("tls", tls_detail(info));
    } else {
        report.warn(
            "tls",
            tls_detail(info),
            format!(
                "certificate verification is off for this account: anyone on the path could read the password. \
                 If this is the server's own certificate, pin it instead (--pin-certificate {}): only that \
                 exact certificate is then accepted",
                info.fingerprint
            ),
        );
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
    report.begin(if settings.security == Security::Starttls {
        "tls"
    } else {
        "capabilities"
    });
    let (stream, greeting) = match within(
        STEP_LIMIT,
        "capabilities",
        imap::greet(stream, settings, tls),
    )
    .await
    {
        Ok(ok) => ok,
        Err(e) => {
            return report.fail(prelogin_step(&e), e.to_string(), e.hint_for(settings));
        }
    };
    if !had_tls && let Some(info) = &greeting.tls {
        tls_step(&mut report, info);
    }
    capability_step(&mut report, settings, &greeting.capabilities);
    report.begin("login");
    let mut source = match within(
        STEP_LIMIT,
        "login",
        imap::login(stream, &greeting, settings),
    )
    .await
    {
        Ok(source) => source,
        Err(e) => return report.fail("login", e.to_string(), e.hint_for(settings)),
    };
    report.pass("login", format!("logged in as {}", settings.username));
    for folder in &settings.folders {
        report.begin("folder");
        match within(STEP_LIMIT, "folder", source.status(folder)).await {
            Ok(status) => report.pass(
                "folder",
                format!(
                    "{folder}: {} messages, {} unseen",
                    status.messages, status.unseen
                ),
            ),
            Err(e) => return report.fail("folder", e.to_string(), e.hint_for(settings)),
        }
    }
    let _ = tokio::time::timeout(STEP_LIMIT, Box::new(source).close()).await;
    report
}

async fn check_pop3(
    mut report: Report,
    stream: net::MailStream,
    tls: Option<TlsInfo>,
    settings: &AccountSettings,
) -> Report {
    // Greeting and capabilities (with STLS for STARTTLS) first, then login,
    // each its own step, so a refused login is never reported as a
    // capabilities problem. The connection checked above is reused.
    drop(tls);
    report.begin(if settings.security == Security::Starttls {
        "tls"
    } else {
        "capabilities"
    });
    let greeted = within(STEP_LIMIT, "capabilities", async {
        match settings.security {
            Security::Starttls => pop3::stls_client(stream, settings)
                .await
                .map(|(client, info)| (client, Some(info))),
            Security::None | Security::Tls => pop3::greet(stream).await.map(|c| (c, None)),
        }
    })
    .await;
    let client = match greeted {
        Ok((client, upgraded)) => {
            if let Some(info) = &upgraded {
                tls_step(&mut report, info);
            }
            client
        }
        Err(e) => return report.fail(prelogin_step(&e), e.to_string(), e.hint_for(settings)),
    };
    let caps = client
        .capabilities()
        .map(|c| c.names().collect::<Vec<_>>().join(" "))
        .unwrap_or_default();
    capability_step(&mut report, settings, &[caps]);
    report.begin("login");
    let mut source = match within(
        STEP_LIMIT,
        "login",
        pop3::Pop3Source::authenticate(client, settings),
    )
    .await
    {
        Ok(source) => source,
        Err(e) => return report.fail("login", e.to_string(), e.hint_for(settings)),
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
    report.begin("folder");
    match within(
        STEP_LIMIT,
        "folder",
        source.list("INBOX", &FolderCursor::default()),
    )
    .await
    {
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
        Err(e) => return report.fail("folder", e.to_string(), e.hint_for(settings)),
    }
    let _ = tokio::time::timeout(STEP_LIMIT, Box::new(source).close()).await;
    report
}
