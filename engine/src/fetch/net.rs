//! Network: TCP (direct or through a SOCKS5 proxy), TLS with certificate
//! checks, and I/O timeouts. Protocol modules get a [`MailStream`] and never
//! see sockets, proxies or rustls.
//!
//! Certificates are verified against the system roots, plus an optional CA
//! file per account, or, when the account pins one, by its SHA-256
//! fingerprint alone. Skipping verification is an explicit account setting
//! and logs a warning on every connect. Whatever the outcome, the hand-shake
//! records the certificate the server presented, so a refusal can show it
//! (and the fingerprint to pin) without a second connection.
//!
//! Time is bounded twice on every connection: an idle timeout (nothing
//! arrives for `timeouts.io`), and a deadline per exchange — from a command
//! written to the end of its reply — of `timeouts.io` plus one second per
//! [`MIN_RATE`] bytes received. A server trickling one byte per second is cut
//! off as surely as a silent one, while a large message on a slow but honest
//! line still gets the time its size needs.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{Sleep, timeout};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::domain::{AccountSettings, CertificatePin, ProxySettings};

/// A network-level failure, naming the step and, where possible, the fix.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// The host name did not resolve.
    #[error("cannot resolve {host}: {source}")]
    Resolve {
        /// Host name.
        host: String,
        /// Resolver error.
        source: io::Error,
    },
    /// TCP connect failed.
    #[error("cannot connect to {target}: {source}")]
    Connect {
        /// `host:port`.
        target: String,
        /// Socket error.
        source: io::Error,
    },
    /// TCP connect (or the proxy hand-shake) took too long.
    #[error("connecting to {target} timed out after {after:?}")]
    ConnectTimeout {
        /// `host:port`.
        target: String,
        /// The timeout.
        after: Duration,
    },
    /// The SOCKS5 proxy refused or failed.
    #[error("SOCKS5 proxy {proxy}: {reason}")]
    Proxy {
        /// `host:port` of the proxy.
        proxy: String,
        /// What went wrong.
        reason: String,
    },
    /// The server's certificate was not accepted.
    #[error("certificate of {host} rejected: {reason}{}", presented_text(.presented.as_deref()))]
    Certificate {
        /// Host name checked.
        host: String,
        /// What is wrong with it, in words.
        reason: String,
        /// The same, for choosing a hint.
        problem: CertificateProblem,
        /// The certificate the server presented, when the hand-shake got
        /// that far: its fingerprint is what an admin can pin.
        presented: Option<Box<PresentedCertificate>>,
    },
    /// The TLS hand-shake failed for another reason.
    #[error("TLS hand-shake with {host} failed: {reason}")]
    Tls {
        /// Host name.
        host: String,
        /// What went wrong.
        reason: String,
    },
    /// The TLS hand-shake took too long.
    #[error("TLS hand-shake with {host} timed out after {after:?}")]
    TlsTimeout {
        /// Host name.
        host: String,
        /// The timeout.
        after: Duration,
    },
    /// The CA file could not be used.
    #[error("CA file {path}: {reason}")]
    CaFile {
        /// The file.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// STARTTLS / STLS was asked for and the server does not offer it.
    #[error("the server does not offer {command}; refusing to continue without TLS")]
    StartTlsNotOffered {
        /// `STARTTLS` or `STLS`.
        command: &'static str,
    },
    /// Reading or writing made no progress for too long.
    #[error("the server sent nothing for {} s", .0.as_secs())]
    IdleTimeout(Duration),
    /// An exchange took longer than its deadline: the server sends, but far
    /// too slowly.
    #[error(
        "the server is too slow: {received} bytes in {} s, while Intake allows {} s plus 1 s per {} KiB",
        .after.as_secs(), .grace.as_secs(), MIN_RATE / 1024
    )]
    TooSlow {
        /// Bytes of the reply received by then.
        received: u64,
        /// Time since the exchange began.
        after: Duration,
        /// The allowance before the rate counts (the idle timeout).
        grace: Duration,
    },
    /// A step of "Test settings" took longer than it may.
    #[error("no complete answer for the {step} step within {} s", .after.as_secs())]
    StepDeadline {
        /// The step.
        step: &'static str,
        /// Its limit.
        after: Duration,
    },
    /// The connection broke.
    #[error("connection error: {0}")]
    Io(io::Error),
}

/// Slowest transfer accepted once an exchange's grace period (the idle
/// timeout) is used up, in bytes per second: 16 KiB/s lets a 50 MiB message
/// take 53 minutes, and cuts off a one-byte-per-second server at the end of
/// the grace period.
pub const MIN_RATE: u64 = 16 * 1024;

/// What is wrong with a rejected certificate, for the hint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertificateProblem {
    /// Not issued by a trusted CA (self-signed, private CA, CA file missing).
    UnknownIssuer,
    /// A CA certificate presented as the server's own certificate.
    CaUsedAsEndEntity,
    /// Expired.
    Expired,
    /// Not valid yet.
    NotYetValid,
    /// Issued for another name.
    WrongName,
    /// The account pins another certificate than the one presented.
    PinMismatch,
    /// Anything else.
    Other,
}

impl From<io::Error> for NetError {
    fn from(e: io::Error) -> Self {
        if e.kind() == io::ErrorKind::TimedOut
            && let Some(inner) = e.get_ref()
        {
            if let Some(d) = inner.downcast_ref::<IdleTimeout>() {
                return NetError::IdleTimeout(d.0);
            }
            if let Some(slow) = inner.downcast_ref::<TooSlow>() {
                return NetError::TooSlow {
                    received: slow.received,
                    after: slow.after,
                    grace: slow.grace,
                };
            }
        }
        NetError::Io(e)
    }
}

/// Marker carried inside the `io::Error` of a missed exchange deadline.
#[derive(Debug)]
struct TooSlow {
    received: u64,
    after: Duration,
    grace: Duration,
}

impl fmt::Display for TooSlow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} bytes in {:?}: slower than {MIN_RATE} bytes/s",
            self.received, self.after
        )
    }
}

impl std::error::Error for TooSlow {}

/// Marker carried inside the `io::Error` of an idle timeout.
#[derive(Debug)]
struct IdleTimeout(Duration);

impl fmt::Display for IdleTimeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "no data for {:?}", self.0)
    }
}

impl std::error::Error for IdleTimeout {}

/// Anything a connection can run over.
trait Io: AsyncRead + AsyncWrite + Unpin + Send + Sync {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + Sync> Io for T {}

enum Inner {
    Plain(Box<dyn Io>),
    Tls(Box<TlsStream<Box<dyn Io>>>),
}

/// A connection to a mail server: plain or TLS, direct or proxied, with an
/// idle timeout on every read and write and a deadline on every exchange.
pub struct MailStream {
    inner: Inner,
    idle: Duration,
    read_timer: Option<Pin<Box<Sleep>>>,
    write_timer: Option<Pin<Box<Sleep>>>,
    exchange: Exchange,
    /// Set while the server may rightly stay silent longer than `idle`
    /// (IMAP IDLE): the read timeout and the exchange's grace until the
    /// next command.
    quiet: Option<Duration>,
}

/// The current command/response exchange: it begins when a command is
/// written after a reply was read (or when the connection opens, for the
/// greeting), and must end by its deadline.
struct Exchange {
    started: Instant,
    /// Bytes read since it began.
    received: u64,
    /// The last operation was a read: the next write begins a new exchange.
    reading: bool,
    /// Wakes a pending read at the deadline.
    timer: Option<Pin<Box<Sleep>>>,
}

impl Exchange {
    fn new() -> Self {
        Exchange {
            started: Instant::now(),
            received: 0,
            reading: false,
            timer: None,
        }
    }

    /// Grace plus one second per [`MIN_RATE`] bytes received.
    fn deadline(&self, grace: Duration) -> Instant {
        self.started + grace + Duration::from_secs_f64(self.received as f64 / MIN_RATE as f64)
    }

    fn too_slow(&self, grace: Duration) -> io::Error {
        if self.received == 0 {
            // Nothing at all is silence, whichever timer noticed first.
            return io::Error::new(io::ErrorKind::TimedOut, IdleTimeout(grace));
        }
        io::Error::new(
            io::ErrorKind::TimedOut,
            TooSlow {
                received: self.received,
                after: self.started.elapsed(),
                grace,
            },
        )
    }
}

impl fmt::Debug for MailStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MailStream")
            .field("tls", &self.is_tls())
            .finish_non_exhaustive()
    }
}

/// A server's certificate, as a report or an error shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct PresentedCertificate {
    /// SHA-256 fingerprint, `sha256:…`: what an account can pin.
    #[schema(value_type = String)]
    pub fingerprint: CertificatePin,
    /// Subject.
    pub subject: String,
    /// Issuer.
    pub issuer: String,
    /// Expiry (as x509-parser prints it).
    pub not_after: String,
}

impl PresentedCertificate {
    /// Reads a DER certificate; the names stay empty if it does not parse
    /// (the fingerprint never fails).
    pub fn from_der(der: &[u8]) -> Self {
        let mut out = PresentedCertificate {
            fingerprint: CertificatePin::of(der),
            subject: String::new(),
            issuer: String::new(),
            not_after: String::new(),
        };
        if let Ok((_, parsed)) = x509_parser::parse_x509_certificate(der) {
            out.subject = parsed.subject().to_string();
            out.issuer = parsed.issuer().to_string();
            out.not_after = parsed.validity().not_after.to_string();
        }
        out
    }
}

fn presented_text(presented: Option<&PresentedCertificate>) -> String {
    presented.map_or_else(String::new, |p| {
        format!(
            "; the server presented {} (subject \"{}\", issuer \"{}\", expires {})",
            p.fingerprint, p.subject, p.issuer, p.not_after
        )
    })
}

/// What the TLS hand-shake established, for "Test settings".
#[derive(Debug, Clone, Default, Serialize)]
pub struct TlsInfo {
    /// e.g. `TLSv1_3`.
    pub protocol: String,
    /// Negotiated cipher suite.
    pub cipher: String,
    /// Certificate subject.
    pub subject: String,
    /// Certificate issuer.
    pub issuer: String,
    /// Certificate expiry (RFC 3339).
    pub not_after: String,
    /// SHA-256 fingerprint of the certificate, `sha256:…`.
    pub fingerprint: String,
    /// True if the certificate was verified (by a CA or by the account's
    /// pin); false when verification was skipped by the account's explicit
    /// choice.
    pub verified: bool,
    /// True if it was accepted because the account pins exactly it.
    pub pinned: bool,
}

impl MailStream {
    fn new(io: Box<dyn Io>, idle: Duration) -> Self {
        MailStream {
            inner: Inner::Plain(io),
            idle,
            read_timer: None,
            write_timer: None,
            exchange: Exchange::new(),
            quiet: None,
        }
    }

    /// From now until the next command is written, the server may stay
    /// silent for up to `silence` (IMAP IDLE waits for the server to speak
    /// first). The usual timeouts come back with the next command, so a
    /// dead link is still found when the wait is renewed.
    pub fn allow_silence(&mut self, silence: Duration) {
        self.quiet = Some(silence);
        self.read_timer = None;
        self.exchange = Exchange::new();
        self.exchange.reading = true;
    }

    /// True once TLS is established.
    pub fn is_tls(&self) -> bool {
        matches!(self.inner, Inner::Tls(_))
    }

    /// Upgrades a plain connection to TLS (after STARTTLS / STLS was
    /// accepted, or at once for implicit TLS).
    pub async fn start_tls(
        self,
        settings: &AccountSettings,
    ) -> Result<(MailStream, TlsInfo), NetError> {
        let (stream, info) = self.start_tls_quietly(settings).await?;
        if !settings.verify_certificate && settings.pinned_certificate.is_none() {
            tracing::warn!(account = %settings.name, host = %settings.host, "certificate verification is switched off for this account");
        }
        Ok((stream, info))
    }

    /// [`Self::start_tls`] without the warning for switched-off
    /// verification.
    async fn start_tls_quietly(
        self,
        settings: &AccountSettings,
    ) -> Result<(MailStream, TlsInfo), NetError> {
        let MailStream { inner, idle, .. } = self;
        let Inner::Plain(io) = inner else {
            return Err(NetError::Tls {
                host: settings.host.clone(),
                reason: "already encrypted".into(),
            });
        };
        let host = settings.host.clone();
        let presented = Presented::default();
        let config = client_config(settings, &presented)?;
        let name = ServerName::try_from(host.clone()).map_err(|e| NetError::Tls {
            host: host.clone(),
            reason: format!("invalid server name: {e}"),
        })?;
        let connector = TlsConnector::from(config);
        let tls = match timeout(settings.timeouts.tls, connector.connect(name, io)).await {
            Err(_) => {
                return Err(NetError::TlsTimeout {
                    host,
                    after: settings.timeouts.tls,
                });
            }
            Ok(Err(e)) => return Err(tls_error(&host, e, &presented)),
            Ok(Ok(tls)) => tls,
        };
        let mut info = describe(&tls);
        info.pinned = settings.pinned_certificate.is_some();
        info.verified = settings.verify_certificate || info.pinned;
        Ok((
            MailStream {
                inner: Inner::Tls(Box::new(tls)),
                idle,
                read_timer: None,
                write_timer: None,
                exchange: Exchange::new(),
                quiet: None,
            },
            info,
        ))
    }

    fn io(&mut self) -> Pin<&mut dyn Io> {
        match &mut self.inner {
            Inner::Plain(io) => Pin::new(io.as_mut()),
            Inner::Tls(tls) => Pin::new(tls.as_mut() as &mut dyn Io),
        }
    }
}

fn poll_timer(
    timer: &mut Option<Pin<Box<Sleep>>>,
    idle: Duration,
    cx: &mut Context<'_>,
) -> Poll<io::Error> {
    let t = timer.get_or_insert_with(|| Box::pin(tokio::time::sleep(idle)));
    match t.as_mut().poll(cx) {
        Poll::Ready(()) => {
            *timer = None;
            Poll::Ready(io::Error::new(io::ErrorKind::TimedOut, IdleTimeout(idle)))
        }
        Poll::Pending => Poll::Pending,
    }
}

impl AsyncRead for MailStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let grace = this.quiet.unwrap_or(this.idle);
        let deadline = this.exchange.deadline(grace);
        if Instant::now() >= deadline {
            return Poll::Ready(Err(this.exchange.too_slow(grace)));
        }
        let before = buf.filled().len();
        match this.io().poll_read(cx, buf) {
            Poll::Ready(r) => {
                this.read_timer = None;
                this.exchange.received += (buf.filled().len() - before) as u64;
                this.exchange.reading = true;
                Poll::Ready(r)
            }
            Poll::Pending => {
                let timer = this
                    .exchange
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline.into())));
                if timer.deadline() != deadline.into() {
                    timer.as_mut().reset(deadline.into());
                }
                if timer.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Err(this.exchange.too_slow(grace)));
                }
                poll_timer(&mut this.read_timer, grace, cx).map(Err)
            }
        }
    }
}

impl AsyncWrite for MailStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.exchange.reading {
            // A command after a reply: a new exchange, a new deadline.
            this.exchange = Exchange::new();
            this.quiet = None;
        }
        match this.io().poll_write(cx, buf) {
            Poll::Ready(r) => {
                this.write_timer = None;
                Poll::Ready(r)
            }
            Poll::Pending => poll_timer(&mut this.write_timer, this.idle, cx).map(Err),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        match this.io().poll_flush(cx) {
            Poll::Ready(r) => {
                this.write_timer = None;
                Poll::Ready(r)
            }
            Poll::Pending => poll_timer(&mut this.write_timer, this.idle, cx).map(Err),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.io().poll_shutdown(cx)
    }
}

/// Resolves the server (not used through a proxy: the proxy resolves).
pub async fn resolve(host: &str, port: u16) -> Result<Vec<SocketAddr>, NetError> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|source| NetError::Resolve {
            host: host.into(),
            source,
        })?
        .collect();
    if addrs.is_empty() {
        return Err(NetError::Resolve {
            host: host.into(),
            source: io::Error::other("no addresses"),
        });
    }
    Ok(addrs)
}

/// Opens the TCP connection, directly or through the account's SOCKS5 proxy.
/// Returns the stream and the address connected to (direct only).
pub async fn connect_tcp(
    settings: &AccountSettings,
) -> Result<(MailStream, Option<SocketAddr>), NetError> {
    let port = settings.effective_port();
    let target = format!("{}:{port}", settings.host);
    let after = settings.timeouts.connect;
    let idle = settings.timeouts.io;
    if let Some(proxy) = &settings.proxy {
        let stream = timeout(after, connect_socks5(proxy, &settings.host, port))
            .await
            .map_err(|_| NetError::ConnectTimeout {
                target: target.clone(),
                after,
            })??;
        return Ok((MailStream::new(Box::new(stream), idle), None));
    }
    let addrs = resolve(&settings.host, port).await?;
    let mut last = None;
    for addr in addrs {
        match timeout(after, TcpStream::connect(addr)).await {
            Err(_) => {
                last = Some(NetError::ConnectTimeout {
                    target: target.clone(),
                    after,
                })
            }
            Ok(Err(source)) => {
                last = Some(NetError::Connect {
                    target: target.clone(),
                    source,
                })
            }
            Ok(Ok(stream)) => {
                stream.set_nodelay(true).ok();
                return Ok((MailStream::new(Box::new(stream), idle), Some(addr)));
            }
        }
    }
    Err(last.expect("at least one address"))
}

async fn connect_socks5(
    proxy: &ProxySettings,
    host: &str,
    port: u16,
) -> Result<tokio_socks::tcp::Socks5Stream<TcpStream>, NetError> {
    let proxy_addr = format!("{}:{}", proxy.host, proxy.port);
    let fail = |e: tokio_socks::Error| NetError::Proxy {
        proxy: proxy_addr.clone(),
        reason: e.to_string(),
    };
    let stream = match (&proxy.username, &proxy.password) {
        (Some(user), Some(pass)) => tokio_socks::tcp::Socks5Stream::connect_with_password(
            proxy_addr.as_str(),
            (host, port),
            user,
            pass.expose(),
        )
        .await
        .map_err(fail)?,
        _ => tokio_socks::tcp::Socks5Stream::connect(proxy_addr.as_str(), (host, port))
            .await
            .map_err(fail)?,
    };
    Ok(stream)
}

/// Connects and, for implicit TLS, completes the hand-shake. STARTTLS is the
/// protocol module's job (it must ask first).
pub async fn connect(
    settings: &AccountSettings,
) -> Result<(MailStream, Option<TlsInfo>), NetError> {
    let (stream, _) = connect_tcp(settings).await?;
    match settings.security {
        super::Security::Tls => {
            let (stream, info) = stream.start_tls(settings).await?;
            Ok((stream, Some(info)))
        }
        _ => Ok((stream, None)),
    }
}

/// The end-entity certificate a hand-shake was shown, kept by the verifier
/// whatever it decides.
#[derive(Debug, Default, Clone)]
struct Presented(Arc<Mutex<Option<CertificateDer<'static>>>>);

impl Presented {
    fn keep(&self, cert: &CertificateDer<'_>) {
        if let Ok(mut slot) = self.0.lock() {
            *slot = Some(cert.clone().into_owned());
        }
    }

    fn take(&self) -> Option<PresentedCertificate> {
        let der = self.0.lock().ok()?.take()?;
        Some(PresentedCertificate::from_der(der.as_ref()))
    }
}

/// How an account's server certificate is judged.
#[derive(Debug)]
enum Trust {
    /// By the system roots and the account's CA file, with the name and
    /// dates (webpki).
    Authorities(Arc<rustls::client::WebPkiServerVerifier>),
    /// Exactly this certificate, nothing else about it.
    Pinned(CertificatePin),
    /// Any certificate: the account's explicit, warned-about choice.
    Anything,
}

/// A pinned account was shown another certificate.
#[derive(Debug, thiserror::Error)]
#[error("it is not the certificate this account pins ({pinned})")]
struct PinMismatch {
    pinned: CertificatePin,
}

/// The account's verifier: keeps the presented certificate, then judges it
/// by the account's [`Trust`]. Hand-shake signatures are always checked, so
/// even a pinned or unverified peer must hold the certificate's key.
#[derive(Debug)]
struct AccountVerifier {
    trust: Trust,
    presented: Presented,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ServerCertVerifier for AccountVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.presented.keep(end_entity);
        match &self.trust {
            Trust::Authorities(webpki) => webpki.verify_server_cert(
                end_entity,
                intermediates,
                server_name,
                ocsp_response,
                now,
            ),
            Trust::Pinned(pin) if CertificatePin::of(end_entity.as_ref()) == *pin => {
                Ok(ServerCertVerified::assertion())
            }
            Trust::Pinned(pin) => Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::Other(rustls::OtherError(Arc::new(PinMismatch {
                    pinned: *pin,
                }))),
            )),
            Trust::Anything => Ok(ServerCertVerified::assertion()),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The rustls client config for an account: its pin if it has one, else
/// system roots + CA file, or anything when the account explicitly skips
/// verification. The verifier records the presented certificate in
/// `presented`.
fn client_config(
    settings: &AccountSettings,
    presented: &Presented,
) -> Result<Arc<ClientConfig>, NetError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls_failure = |reason: String| NetError::Tls {
        host: settings.host.clone(),
        reason,
    };
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_failure(e.to_string()))?;
    let trust = if let Some(pin) = settings.pinned_certificate {
        Trust::Pinned(pin)
    } else if settings.verify_certificate {
        let roots = Arc::new(root_store(settings)?);
        Trust::Authorities(
            rustls::client::WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
                .build()
                .map_err(|e| tls_failure(e.to_string()))?,
        )
    } else {
        Trust::Anything
    };
    let config = builder
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AccountVerifier {
            trust,
            presented: presented.clone(),
            provider,
        }))
        .with_no_client_auth();
    Ok(Arc::new(config))
}

fn root_store(settings: &AccountSettings) -> Result<RootCertStore, NetError> {
    let mut roots = RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for cert in native.certs {
        roots.add(cert).ok();
    }
    if let Some(path) = &settings.ca_file {
        let shown = path.display().to_string();
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .map_err(|e| NetError::CaFile {
                path: shown.clone(),
                reason: e.to_string(),
            })?
            .collect::<Result<_, _>>()
            .map_err(|e| NetError::CaFile {
                path: shown.clone(),
                reason: e.to_string(),
            })?;
        if certs.is_empty() {
            return Err(NetError::CaFile {
                path: shown,
                reason: "no PEM certificate in it".into(),
            });
        }
        for cert in certs {
            roots.add(cert).map_err(|e| NetError::CaFile {
                path: shown.clone(),
                reason: e.to_string(),
            })?;
        }
    }
    Ok(roots)
}

fn tls_error(host: &str, e: io::Error, presented: &Presented) -> NetError {
    let reason = e.to_string();
    match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        Some(rustls::Error::InvalidCertificate(cert)) => {
            let (problem, reason) = certificate_problem(cert, host);
            NetError::Certificate {
                host: host.into(),
                reason,
                problem,
                presented: presented.take().map(Box::new),
            }
        }
        _ => NetError::Tls {
            host: host.into(),
            reason,
        },
    }
}

/// rustls's certificate error in words (its `Debug` text, such as
/// `Other(OtherError(CaUsedAsEndEntity))`, is for developers).
fn certificate_problem(
    cert: &rustls::CertificateError,
    host: &str,
) -> (CertificateProblem, String) {
    use rustls::CertificateError as C;
    match cert {
        C::UnknownIssuer => (
            CertificateProblem::UnknownIssuer,
            "it is not issued by a certificate authority this machine or the account's CA file trusts".into(),
        ),
        C::Expired | C::ExpiredContext { .. } => {
            (CertificateProblem::Expired, "it has expired".into())
        }
        C::NotValidYet | C::NotValidYetContext { .. } => {
            (CertificateProblem::NotYetValid, "it is not valid yet".into())
        }
        C::NotValidForName | C::NotValidForNameContext { .. } => (
            CertificateProblem::WrongName,
            format!("it is not issued for the name {host}"),
        ),
        C::Revoked => (CertificateProblem::Other, "it has been revoked".into()),
        C::BadSignature => (
            CertificateProblem::Other,
            "its signature is invalid or uses an unsupported algorithm".into(),
        ),
        C::Other(rustls::OtherError(inner)) if inner.downcast_ref::<PinMismatch>().is_some() => {
            (CertificateProblem::PinMismatch, inner.to_string())
        }
        other if format!("{other:?}").contains("CaUsedAsEndEntity") => (
            CertificateProblem::CaUsedAsEndEntity,
            "the server's certificate is itself a CA certificate, used as the server's own (end-entity) \
             certificate; rustls refuses that"
                .into(),
        ),
        other => (
            CertificateProblem::Other,
            format!("it is not acceptable ({})", short_debug(other)),
        ),
    }
}

/// A developer-facing name, shortened so it cannot flood a message.
fn short_debug(value: &impl fmt::Debug) -> String {
    let text = format!("{value:?}");
    text.chars().take(80).collect()
}

fn describe(tls: &TlsStream<Box<dyn Io>>) -> TlsInfo {
    let (_, conn) = tls.get_ref();
    let mut info = TlsInfo {
        protocol: conn
            .protocol_version()
            .map(|v| format!("{v:?}"))
            .unwrap_or_default(),
        cipher: conn
            .negotiated_cipher_suite()
            .map(|s| format!("{:?}", s.suite()))
            .unwrap_or_default(),
        ..TlsInfo::default()
    };
    if let Some(cert) = conn.peer_certificates().and_then(|c| c.first()) {
        let presented = PresentedCertificate::from_der(cert.as_ref());
        info.fingerprint = presented.fingerprint.to_string();
        info.subject = presented.subject;
        info.issuer = presented.issuer;
        info.not_after = presented.not_after;
    }
    info
}
