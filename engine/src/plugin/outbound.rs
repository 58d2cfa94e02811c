//! Outbound HTTP for plugins (`wasi:http/outgoing-handler`), judged per
//! binding: every request is checked against the binding's allow-list
//! before any name is resolved or connection opened, its body and the
//! response's body are capped, and the whole exchange is bounded by the
//! binding's per-request timeout and by what is left of the plugin's
//! deadline. The host never follows a redirect: a plugin that follows one
//! makes a new request, which the allow-list judges again.
//!
//! The allow-list is Spin's `allowed_outbound_hosts`, narrowed:
//! `scheme://host[:port]`, the scheme `http` or `https`, the host a DNS
//! name, an IP literal or `*.suffix` (any name under the suffix, not the
//! suffix itself), the port the scheme's default when left out. The list
//! judges names, not addresses: a name on the list is resolved with the
//! system's resolver and every address it gives is used.

use std::fmt;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use hyper::http::uri::Scheme;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody, WasiHttpHooks};

use super::limits::Limits;

/// One entry of a binding's allow-list.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AllowedHost {
    /// `true` for `https`.
    https: bool,
    /// Lower-case name or IP literal (IPv6 without brackets); for a
    /// wildcard, the suffix after `*.`.
    host: String,
    /// `*.suffix`: any name under `suffix`.
    wildcard: bool,
    /// The port, the scheme's default when the entry leaves it out.
    port: u16,
    /// Whether the entry named its port (for display).
    explicit_port: bool,
}

/// Why an allow-list entry was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{entry:?} is not an allowed outbound host: {reason} (expected scheme://host[:port], e.g. https://crm.example.com, http://127.0.0.1:8080, https://*.example.com:443)"
)]
pub struct AllowedHostError {
    /// The entry as given.
    pub entry: String,
    /// What is wrong with it.
    pub reason: String,
}

impl AllowedHost {
    /// Parses one entry: `http(s)://host[:port]`, an optional trailing `/`.
    pub fn parse(entry: &str) -> Result<Self, AllowedHostError> {
        let fail = |reason: &str| AllowedHostError {
            entry: entry.chars().take(200).collect(),
            reason: reason.into(),
        };
        let text = entry.trim();
        let (scheme, rest) = text.split_once("://").ok_or_else(|| fail("no scheme"))?;
        let https = match scheme.to_ascii_lowercase().as_str() {
            "https" => true,
            "http" => false,
            _ => return Err(fail("the scheme must be http or https")),
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains(['/', '?', '#']) {
            return Err(fail("a path, query or fragment is not allowed"));
        }
        if rest.contains('@') {
            return Err(fail("user information is not allowed"));
        }
        // Host and port; an IPv6 literal is in brackets.
        let (host, port) = if let Some(inner) = rest.strip_prefix('[') {
            let (addr, after) = inner
                .split_once(']')
                .ok_or_else(|| fail("an unclosed `[`"))?;
            addr.parse::<std::net::Ipv6Addr>()
                .map_err(|_| fail("not an IPv6 address in `[...]`"))?;
            let port = match after {
                "" => None,
                p => Some(p.strip_prefix(':').ok_or_else(|| fail("junk after `]`"))?),
            };
            (addr.to_string(), port)
        } else {
            match rest.rsplit_once(':') {
                Some((h, p)) => (h.to_ascii_lowercase(), Some(p)),
                None => (rest.to_ascii_lowercase(), None),
            }
        };
        let port = match port {
            None => None,
            Some(p) => Some(
                p.parse::<u16>()
                    .ok()
                    .filter(|p| *p != 0)
                    .ok_or_else(|| fail("the port must be a number from 1 to 65535"))?,
            ),
        };
        let (wildcard, host) = match host.strip_prefix("*.") {
            Some(suffix) => (true, suffix.to_string()),
            None => (false, host),
        };
        if host.is_empty() {
            return Err(fail("no host"));
        }
        if host.contains('*') {
            return Err(fail(
                "a wildcard is allowed only as the first label (`*.example.com`)",
            ));
        }
        if host.parse::<IpAddr>().is_err() && !is_dns_name(&host) {
            return Err(fail("the host is not a DNS name or an IP address"));
        }
        if wildcard && host.parse::<IpAddr>().is_ok() {
            return Err(fail("a wildcard applies to names, not IP addresses"));
        }
        if wildcard && !host.contains('.') {
            return Err(fail(
                "a wildcard needs a suffix of at least two labels (`*.example.com`)",
            ));
        }
        Ok(AllowedHost {
            https,
            host,
            wildcard,
            port: port.unwrap_or(if https { 443 } else { 80 }),
            explicit_port: port.is_some(),
        })
    }

    /// Whether a request to `host:port` over `https` (or not) is allowed
    /// by this entry. `host` is lower-case, IPv6 without brackets.
    fn allows(&self, https: bool, host: &str, port: u16) -> bool {
        if self.https != https || self.port != port {
            return false;
        }
        if self.wildcard {
            host.len() > self.host.len() + 1
                && host.ends_with(&self.host)
                && host.as_bytes()[host.len() - self.host.len() - 1] == b'.'
        } else {
            host == self.host
        }
    }
}

fn is_dns_name(host: &str) -> bool {
    host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

impl fmt::Display for AllowedHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.https { "https" } else { "http" };
        let wildcard = if self.wildcard { "*." } else { "" };
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        write!(f, "{scheme}://{wildcard}{host}")?;
        if self.explicit_port {
            write!(f, ":{}", self.port)?;
        }
        Ok(())
    }
}

impl std::str::FromStr for AllowedHost {
    type Err = AllowedHostError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        AllowedHost::parse(s)
    }
}

impl Serialize for AllowedHost {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for AllowedHost {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        AllowedHost::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// Parses a list of entries, each bad one named.
pub fn parse_allow_list<S: AsRef<str>>(
    entries: &[S],
) -> Result<Vec<AllowedHost>, AllowedHostError> {
    let mut list = Vec::with_capacity(entries.len());
    for entry in entries {
        let host = AllowedHost::parse(entry.as_ref())?;
        if !list.contains(&host) {
            list.push(host);
        }
    }
    Ok(list)
}

/// The `wasi:http` hooks of one plugin call: the binding's grant and caps,
/// and the call's deadline.
pub(crate) struct Outbound {
    /// Plugin name, for log fields.
    plugin: Arc<str>,
    /// Tenant, for log fields.
    tenant: String,
    /// The allow-list and the caps.
    limits: Arc<Limits>,
    /// When the plugin's deadline runs out, by the wall clock.
    deadline_at: Instant,
    /// Set when a request was cut short by the plugin's deadline (not by
    /// its own timeout): the call then ends as a timeout, whatever the
    /// plugin made of the error.
    deadline_hit: Arc<AtomicBool>,
}

impl Outbound {
    pub(crate) fn new(
        plugin: Arc<str>,
        tenant: String,
        limits: Arc<Limits>,
        deadline_at: Instant,
    ) -> Self {
        Outbound {
            plugin,
            tenant,
            limits,
            deadline_at,
            deadline_hit: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Whether a request ran into the plugin's deadline.
    pub(crate) fn deadline_hit(&self) -> bool {
        self.deadline_hit.load(Ordering::Relaxed)
    }

    /// Where a request may go, or why not.
    fn judge(&self, request: &hyper::Request<WasiBody>) -> Result<Target, HttpError> {
        let uri = request.uri();
        let https = match uri.scheme() {
            Some(s) if *s == Scheme::HTTPS => true,
            Some(s) if *s == Scheme::HTTP => false,
            _ => return Err(HttpError::HttpRequestUriInvalid),
        };
        let host = uri
            .host()
            .ok_or(HttpError::HttpRequestUriInvalid)?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        if self.limits.allowed_outbound_hosts.is_empty() {
            tracing::warn!(plugin = %self.plugin, tenant = %self.tenant, %host, port, "outbound HTTP refused: this binding has no outbound grant");
            return Err(HttpError::HttpRequestDenied);
        }
        if !self
            .limits
            .allowed_outbound_hosts
            .iter()
            .any(|a| a.allows(https, &host, port))
        {
            tracing::warn!(plugin = %self.plugin, tenant = %self.tenant, %host, port, https, "outbound HTTP refused: not in the binding's allow-list");
            return Err(HttpError::HttpRequestDenied);
        }
        if let Some(length) = request
            .headers()
            .get(hyper::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            && length > self.limits.http_request_bytes as u64
        {
            return Err(HttpError::HttpRequestBodySize(Some(length)));
        }
        Ok(Target { https, host, port })
    }
}

/// An allowed destination.
struct Target {
    https: bool,
    host: String,
    port: u16,
}

type IoFuture = Box<dyn Future<Output = Result<(), HttpError>> + Send>;
type SendFuture =
    Box<dyn Future<Output = Result<(hyper::Response<WasiBody>, IoFuture), HttpError>> + Send>;

/// A request that ends before it starts.
fn refused(error: HttpError) -> SendFuture {
    Box::new(std::future::ready(Err::<
        (hyper::Response<WasiBody>, IoFuture),
        HttpError,
    >(error)))
}

impl WasiHttpHooks for Outbound {
    fn send_request(
        &mut self,
        request: hyper::Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ) -> SendFuture {
        let target = match self.judge(&request) {
            Ok(target) => target,
            Err(e) => return refused(e),
        };
        // One budget for the whole exchange: the binding's per-request
        // timeout, never past the plugin's deadline.
        let now = Instant::now();
        let left = self.deadline_at.saturating_duration_since(now);
        let bounded_by_deadline = left <= self.limits.http_timeout;
        let budget = self.limits.http_timeout.min(left);
        let hit = self.deadline_hit.clone();
        if budget.is_zero() {
            hit.store(true, Ordering::Relaxed);
            return refused(HttpError::ConnectionTimeout);
        }
        let until = tokio::time::Instant::from_std(now + budget);
        let expired = Expiry {
            hit,
            bounded_by_deadline,
        };
        let caps = Caps {
            request: self.limits.http_request_bytes,
            response: self.limits.http_response_bytes,
        };
        let span = tracing::info_span!("plugin.http", plugin = %self.plugin, tenant = %self.tenant, host = %target.host, port = target.port, method = %request.method());
        Box::new(tracing::Instrument::instrument(
            async move {
                let exchange = exchange(target, request, options, caps, until, expired.clone());
                match tokio::time::timeout_at(until, exchange).await {
                    Ok(result) => {
                        if let Err(e) = &result {
                            tracing::debug!(error = %e, "outbound HTTP request failed");
                        }
                        result
                    }
                    Err(_elapsed) => {
                        expired.fire();
                        tracing::debug!(
                            budget_ms = budget.as_millis() as u64,
                            "outbound HTTP request timed out"
                        );
                        Err(HttpError::ConnectionReadTimeout)
                    }
                }
            },
            span,
        ))
    }
}

/// Who is told when a request's budget runs out.
#[derive(Clone)]
struct Expiry {
    hit: Arc<AtomicBool>,
    /// The budget was what was left of the deadline.
    bounded_by_deadline: bool,
}

impl Expiry {
    fn fire(&self) {
        if self.bounded_by_deadline {
            self.hit.store(true, Ordering::Relaxed);
        }
    }
}

#[derive(Clone, Copy)]
struct Caps {
    request: usize,
    response: usize,
}

trait Stream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static> Stream for T {}

/// Connects, sends, and hands back the response head with a capped body.
async fn exchange(
    target: Target,
    mut request: hyper::Request<WasiBody>,
    options: Option<RequestOptions>,
    caps: Caps,
    until: tokio::time::Instant,
    expired: Expiry,
) -> Result<(hyper::Response<WasiBody>, IoFuture), HttpError> {
    let within = |limit: Option<Duration>| async move {
        match limit {
            Some(limit) => tokio::time::sleep(limit).await,
            None => std::future::pending().await,
        }
    };
    let connect = async {
        let addrs: Vec<_> = tokio::net::lookup_host((target.host.as_str(), target.port))
            .await
            .map_err(|_| HttpError::DnsError {
                rcode: Some("name not resolved".into()),
                info_code: None,
            })?
            .collect();
        let mut last = None;
        for addr in addrs {
            match tokio::net::TcpStream::connect(addr).await {
                Ok(stream) => return Ok(stream),
                Err(e) => last = Some(e),
            }
        }
        Err(match last {
            Some(e) => HttpError::Connect(e),
            None => HttpError::DestinationNotFound,
        })
    };
    let stream = tokio::select! {
        stream = connect => stream?,
        () = within(options.and_then(|o| o.connect_timeout)) => return Err(HttpError::ConnectionTimeout),
    };
    let stream: Box<dyn Stream> = if target.https {
        let config = tls_config()?;
        let name = rustls::pki_types::ServerName::try_from(target.host.clone()).map_err(|_| {
            HttpError::DnsError {
                rcode: Some("invalid name for TLS".into()),
                info_code: None,
            }
        })?;
        let tls = tokio_rustls::TlsConnector::from(config)
            .connect(name, stream)
            .await
            .map_err(HttpError::Tls)?;
        Box::new(tls)
    } else {
        Box::new(stream)
    };
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(wasmtime_wasi_http::io::TokioIo::new(stream)).await?;
    // On the wire the request line carries the path only.
    let path = request
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    *request.uri_mut() = hyper::Uri::builder()
        .path_and_query(path)
        .build()
        .map_err(|_| HttpError::HttpRequestUriInvalid)?;
    let request = request.map(|body| {
        http_body_util::BodyExt::boxed_unsync(Capped::new(body, caps.request, Direction::Request))
    });
    let send = async {
        tokio::select! {
            response = sender.send_request(request) => response.map_err(HttpError::from),
            () = within(options.and_then(|o| o.first_byte_timeout)) => Err(HttpError::ConnectionReadTimeout),
        }
    };
    // Drive the connection while waiting for the response head.
    let mut send = std::pin::pin!(send);
    let mut conn = Some(conn);
    let response = std::future::poll_fn(|cx| match send.as_mut().poll(cx) {
        Poll::Ready(result) => Poll::Ready(result),
        Poll::Pending => {
            let Some(c) = conn.as_mut() else {
                return Poll::Pending;
            };
            let done = ready!(Pin::new(c).poll(cx));
            conn = None;
            match done {
                Ok(()) => send.as_mut().poll(cx),
                Err(e) => Poll::Ready(Err(HttpError::from(e))),
            }
        }
    })
    .await?;
    tracing::debug!(
        status = response.status().as_u16(),
        "outbound HTTP response"
    );
    if let Some(length) = response
        .headers()
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        && length > caps.response as u64
    {
        tracing::warn!(
            length,
            cap = caps.response,
            "outbound HTTP response refused: its body is over the binding's cap"
        );
        return Err(HttpError::HttpResponseBodySize(Some(length)));
    }
    let response = response.map(|body| {
        let body = Capped::new(body, caps.response, Direction::Response).until(until, expired);
        http_body_util::BodyExt::boxed_unsync(body)
    });
    let io: IoFuture = Box::new(async move {
        match conn {
            Some(conn) => conn.await.map_err(HttpError::from),
            None => Ok(()),
        }
    });
    Ok((response, io))
}

/// The client TLS settings: the system's trust store, built once.
fn tls_config() -> Result<Arc<rustls::ClientConfig>, HttpError> {
    static CONFIG: OnceLock<Result<Arc<rustls::ClientConfig>, String>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let mut roots = rustls::RootCertStore::empty();
            let found = rustls_native_certs::load_native_certs();
            for cert in found.certs {
                let _ = roots.add(cert);
            }
            if roots.is_empty() {
                return Err("no trusted certificate authorities found on this system".into());
            }
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| e.to_string())?
                .with_root_certificates(roots)
                .with_no_client_auth();
            Ok(Arc::new(config))
        })
        .clone()
        .map_err(|reason| HttpError::InternalError(Some(reason)))
}

#[derive(Clone, Copy)]
enum Direction {
    Request,
    Response,
}

/// A body cut off at a cap (an error, never a silent truncation) and, for
/// a response, at the end of the request's budget.
struct Capped<B> {
    inner: B,
    left: usize,
    seen: u64,
    direction: Direction,
    until: Option<(Pin<Box<tokio::time::Sleep>>, Expiry)>,
}

impl<B> Capped<B> {
    fn new(inner: B, cap: usize, direction: Direction) -> Self {
        Capped {
            inner,
            left: cap,
            seen: 0,
            direction,
            until: None,
        }
    }

    fn until(mut self, at: tokio::time::Instant, expired: Expiry) -> Self {
        self.until = Some((Box::pin(tokio::time::sleep_until(at)), expired));
        self
    }
}

impl<B> Body for Capped<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<HttpError>,
{
    type Data = Bytes;
    type Error = HttpError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, HttpError>>> {
        let this = &mut *self;
        let frame = match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => frame,
            Poll::Pending => {
                if let Some((sleep, expired)) = &mut this.until
                    && sleep.as_mut().poll(cx).is_ready()
                {
                    expired.fire();
                    return Poll::Ready(Some(Err(HttpError::ConnectionReadTimeout)));
                }
                return Poll::Pending;
            }
        };
        match frame {
            None => Poll::Ready(None),
            Some(Err(e)) => Poll::Ready(Some(Err(e.into()))),
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    this.seen += data.len() as u64;
                    if data.len() > this.left {
                        this.left = 0;
                        return Poll::Ready(Some(Err(match this.direction {
                            Direction::Request => HttpError::HttpRequestBodySize(Some(this.seen)),
                            Direction::Response => {
                                tracing::warn!(
                                    received = this.seen,
                                    "outbound HTTP response cut off: its body is over the binding's cap"
                                );
                                HttpError::HttpResponseBodySize(Some(this.seen))
                            }
                        })));
                    }
                    this.left -= data.len();
                }
                Poll::Ready(Some(Ok(frame)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed(list: &[&str], https: bool, host: &str, port: u16) -> bool {
        parse_allow_list(list)
            .unwrap()
            .iter()
            .any(|a| a.allows(https, host, port))
    }

    #[test]
    fn entries_parse_like_spin_and_print_back() {
        for (entry, shown) in [
            ("https://crm.example.com", "https://crm.example.com"),
            ("HTTPS://CRM.Example.com/", "https://crm.example.com"),
            ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
            ("https://*.example.com:443", "https://*.example.com:443"),
            ("http://[::1]:9000", "http://[::1]:9000"),
        ] {
            assert_eq!(AllowedHost::parse(entry).unwrap().to_string(), shown);
        }
    }

    #[test]
    fn malformed_entries_are_refused_with_the_reason() {
        for (entry, reason) in [
            ("crm.example.com", "no scheme"),
            ("ftp://crm.example.com", "http or https"),
            ("https://crm.example.com/api", "path"),
            ("https://user@crm.example.com", "user information"),
            ("https://crm.example.com:0", "port"),
            ("https://crm.example.com:99999", "port"),
            ("https://", "no host"),
            ("https://*", "wildcard"),
            ("https://a.*.example.com", "wildcard"),
            ("https://*.com", "two labels"),
            ("https://*.10.0.0.1", "IP"),
            ("https://crm example.com", "DNS name"),
            ("http://[::1", "unclosed"),
        ] {
            let e = AllowedHost::parse(entry).unwrap_err();
            assert!(e.to_string().contains(reason), "{entry}: {e}");
        }
    }

    #[test]
    fn requests_match_scheme_host_and_port_exactly() {
        let list = [
            "http://127.0.0.1:8080",
            "https://*.example.com",
            "https://crm.test",
        ];
        assert!(allowed(&list, false, "127.0.0.1", 8080));
        assert!(!allowed(&list, false, "127.0.0.1", 8081), "another port");
        assert!(!allowed(&list, true, "127.0.0.1", 8080), "another scheme");
        assert!(!allowed(&list, false, "127.0.0.2", 8080), "another address");
        assert!(allowed(&list, true, "api.example.com", 443));
        assert!(allowed(&list, true, "a.b.example.com", 443));
        assert!(
            !allowed(&list, true, "example.com", 443),
            "the suffix itself"
        );
        assert!(
            !allowed(&list, true, "evilexample.com", 443),
            "not a label boundary"
        );
        assert!(!allowed(&list, true, "api.example.com", 8443));
        assert!(allowed(&list, true, "crm.test", 443));
        assert!(!allowed(&list, true, "crm.test.evil.example", 443));
        assert!(!allowed(&[], false, "127.0.0.1", 8080), "no grant");
    }

    #[test]
    fn limits_keep_their_old_json_when_nothing_outbound_is_set() {
        let json = serde_json::to_string(&Limits::default()).unwrap();
        assert!(!json.contains("http"), "{json}");
        let granted = Limits {
            allowed_outbound_hosts: parse_allow_list(&["http://127.0.0.1:8080"]).unwrap(),
            ..Limits::default()
        };
        let json = serde_json::to_string(&granted).unwrap();
        assert!(
            json.contains(r#""allowed_outbound_hosts":["http://127.0.0.1:8080"]"#),
            "{json}"
        );
        let back: Limits = serde_json::from_str(&json).unwrap();
        assert_eq!(back, granted);
        let bad = json.replace("127.0.0.1:8080", "127.0.0.1:0");
        assert!(serde_json::from_str::<Limits>(&bad).is_err());
    }
}
