//! Discovery over real protocol exchanges on loopback: a DNS responder
//! answering SRV queries (UDP on 127.0.0.1) and an HTTP server serving
//! autoconfig documents (axum on 127.0.0.1:0), with the engine's resolver
//! and HTTP client pointed at them through `DiscoveryConfig`. The table,
//! SRV and autoconfig each find what they should, in that order; nothing
//! found lists every step; a hanging server, a hanging DNS and an
//! oversized or endless document are cut off; a name that resolves to
//! loopback is refused unless private networks are allowed.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use intake::discover::{
    DiscoverError, Discoverer, DiscoveryConfig, DiscoveryMode, Method, OAuthProvider,
};
use intake::fetch::{Protocol, Security};
use intake_tests::dns::{DnsResponder, Record, Srv, Zone};

const AUTOCONFIG: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<clientConfig version="1.1">
  <emailProvider id="auto.example">
    <domain>auto.example</domain>
    <displayName>Auto Example Mail</displayName>
    <incomingServer type="imap">
      <hostname>imap.%EMAILDOMAIN%</hostname>
      <port>993</port>
      <socketType>SSL</socketType>
      <authentication>password-cleartext</authentication>
      <username>%EMAILLOCALPART%</username>
    </incomingServer>
    <incomingServer type="pop3">
      <hostname>pop.auto.example</hostname>
      <port>110</port>
      <socketType>STARTTLS</socketType>
      <authentication>OAuth2</authentication>
      <username>%EMAILADDRESS%</username>
    </incomingServer>
  </emailProvider>
  <oAuth2><issuer>login.microsoftonline.com</issuer></oAuth2>
</clientConfig>"#;

/// What the autoconfig server saw.
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<String>>>);

/// `/first/{domain}/…` is the first template, `/second/{domain}/…` the
/// second. Each domain behaves as its name says.
async fn autoconfig(
    State(seen): State<Seen>,
    Path((which, domain)): Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> Response {
    seen.0.lock().unwrap().push(format!(
        "{which} {domain} {}",
        query.as_deref().unwrap_or("")
    ));
    let xml = |body: Body| ([(header::CONTENT_TYPE, "application/xml")], body).into_response();
    match (which.as_str(), domain.as_str()) {
        ("second", "auto.example") => xml(Body::from(AUTOCONFIG)),
        (_, "slow.example") => {
            tokio::time::sleep(Duration::from_secs(60)).await;
            xml(Body::from(AUTOCONFIG))
        }
        ("first", "big.example") => {
            // Announced: refused before it is read.
            let mut big = AUTOCONFIG.to_owned();
            big.push_str(&" ".repeat(100 << 10));
            xml(Body::from(big))
        }
        ("second", "big.example") => {
            // Not announced (chunked, and endless): cut off at the cap.
            let chunks = futures::stream::repeat_with(|| {
                Ok::<_, std::io::Error>(axum::body::Bytes::from(vec![b' '; 8192]))
            });
            xml(Body::from_stream(chunks))
        }
        ("first", "loop.example") => (
            StatusCode::FOUND,
            [(
                header::LOCATION,
                "/first/loop.example/mail/config-v1.1.xml".to_owned(),
            )],
        )
            .into_response(),
        ("second", "garbage.example") => xml(Body::from("<html><body>It works!</body></html>")),
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

/// The autoconfig server; its address.
async fn start_http(seen: Seen) -> std::net::SocketAddr {
    let app = axum::Router::new()
        .route(
            "/{which}/{domain}/mail/config-v1.1.xml",
            axum::routing::get(autoconfig),
        )
        .with_state(seen);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    addr
}

fn zone() -> Zone {
    let srv = |records: Vec<Srv>| records.into_iter().map(Record::Srv).collect::<Vec<_>>();
    let mut zone = Zone::new();
    zone.insert(
        "_imaps._tcp.srv.example".into(),
        srv(vec![
            Srv::new(10, 0, 993, "imap.srv.example"),
            Srv::new(20, 0, 993, "backup.srv.example"),
        ]),
    );
    zone.insert(
        "_imap._tcp.srv.example".into(),
        srv(vec![Srv::new(0, 0, 0, ".")]),
    );
    zone.insert(
        "_pop3s._tcp.srv.example".into(),
        srv(vec![Srv::new(10, 0, 995, "pop.srv.example")]),
    );
    // A company on Microsoft 365 that publishes nothing else.
    zone.insert(
        "m365.example".into(),
        vec![
            Record::Mx(20, "backup-mx.m365.example".into()),
            Record::Mx(10, "m365-example.mail.protection.outlook.com".into()),
        ],
    );
    // Its own mail server: MX tells nothing.
    zone.insert(
        "ownmx.example".into(),
        vec![Record::Mx(10, "mx.ownmx.example".into())],
    );
    zone
}

/// A responder that never answers for `hang.example`.
fn dns() -> DnsResponder {
    let ignore: HashSet<String> = ["_imaps", "_imap", "_pop3s", "_pop3"]
        .iter()
        .map(|s| format!("{s}._tcp.hang.example"))
        .collect();
    DnsResponder::start(zone(), ignore)
}

fn config(dns: &DnsResponder, http: std::net::SocketAddr) -> DiscoveryConfig {
    DiscoveryConfig {
        mode: DiscoveryMode::Network,
        name_servers: vec![dns.addr],
        autoconfig_urls: vec![
            format!("http://{http}/first/{{domain}}/mail/config-v1.1.xml?emailaddress={{email}}"),
            format!("http://{http}/second/{{domain}}/mail/config-v1.1.xml"),
        ],
        lookup_timeout: Duration::from_secs(2),
        total_timeout: Duration::from_secs(10),
        max_body: 64 << 10,
        max_redirects: 3,
        allow_private_networks: true,
    }
}

fn results(tried: &[intake::discover::Attempt]) -> String {
    tried
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn the_table_answers_first_without_a_query() {
    let dns = dns();
    let seen = Seen::default();
    let http = start_http(seen.clone()).await;
    let d = Discoverer::new(config(&dns, http));
    let found = d.discover("Ann.Lee@GMAIL.com").await.unwrap();
    assert_eq!(found.method, Method::Table);
    assert_eq!(found.provider.as_deref(), Some("gmail"));
    assert_eq!(found.oauth2, Some(OAuthProvider::Google));
    let s = &found.servers[0];
    assert_eq!(
        (s.protocol, s.host.as_str(), s.port, s.security),
        (Protocol::Imap, "imap.gmail.com", 993, Security::Tls)
    );
    assert_eq!(s.username.as_deref(), Some("Ann.Lee@gmail.com"));
    assert!(dns.asked().is_empty(), "{:?}", dns.asked());
    assert!(seen.0.lock().unwrap().is_empty());
}

#[tokio::test]
async fn srv_records_are_found_and_chosen() {
    let dns = dns();
    let seen = Seen::default();
    let http = start_http(seen.clone()).await;
    let d = Discoverer::new(config(&dns, http));
    let found = d.discover("sales@srv.example").await.unwrap();
    let tried = results(&found.tried);
    assert_eq!(found.method, Method::Srv, "{tried}");
    let summary: Vec<_> = found
        .servers
        .iter()
        .map(|s| (s.protocol, s.host.as_str(), s.port, s.security))
        .collect();
    assert_eq!(
        summary,
        [
            (Protocol::Imap, "imap.srv.example", 993, Security::Tls),
            (Protocol::Pop3, "pop.srv.example", 995, Security::Tls),
        ],
        "{tried}"
    );
    assert!(
        tried.contains("_imap._tcp.srv.example: not offered"),
        "{tried}"
    );
    assert!(
        tried.contains("_pop3._tcp.srv.example: no records"),
        "{tried}"
    );
    let mut asked = dns.asked();
    asked.sort();
    assert_eq!(
        asked,
        [
            "_imap._tcp.srv.example",
            "_imaps._tcp.srv.example",
            "_pop3._tcp.srv.example",
            "_pop3s._tcp.srv.example"
        ]
    );
    // SRV found them: no autoconfig request.
    assert!(seen.0.lock().unwrap().is_empty());
}

#[tokio::test]
async fn autoconfig_is_asked_after_srv() {
    let dns = dns();
    let seen = Seen::default();
    let http = start_http(seen.clone()).await;
    let d = Discoverer::new(config(&dns, http));
    let found = d.discover("ann+crm@auto.example").await.unwrap();
    let tried = results(&found.tried);
    assert_eq!(found.method, Method::Autoconfig, "{tried}");
    assert!(
        found.source.contains("/second/auto.example/"),
        "{}",
        found.source
    );
    assert_eq!(found.provider_name.as_deref(), Some("Auto Example Mail"));
    assert_eq!(found.oauth2, Some(OAuthProvider::Microsoft));
    assert_eq!(found.servers.len(), 2);
    let imap = &found.servers[0];
    assert_eq!(
        (imap.host.as_str(), imap.port, imap.security),
        ("imap.auto.example", 993, Security::Tls)
    );
    assert_eq!(imap.username.as_deref(), Some("ann+crm"));
    assert_eq!(found.servers[1].protocol, Protocol::Pop3);
    assert_eq!(found.servers[1].security, Security::Starttls);
    assert_eq!(
        found.servers[1].username.as_deref(),
        Some("ann+crm@auto.example")
    );
    // SRV first (four names, nothing), then the first URL (404), then the
    // second; the address travels URL-encoded.
    assert_eq!(
        found
            .tried
            .iter()
            .filter(|a| a.method == Method::Srv)
            .count(),
        4,
        "{tried}"
    );
    assert!(tried.contains("HTTP 404"), "{tried}");
    let seen = seen.0.lock().unwrap().clone();
    assert_eq!(
        seen,
        [
            "first auto.example emailaddress=ann%2Bcrm%40auto.example",
            "second auto.example "
        ]
    );
}

#[tokio::test]
async fn a_domain_hosted_by_a_known_provider_is_found_by_its_mx() {
    let dns = dns();
    let seen = Seen::default();
    let http = start_http(seen.clone()).await;
    let d = Discoverer::new(config(&dns, http));
    let found = d.discover("ann@m365.example").await.unwrap();
    let tried = results(&found.tried);
    assert_eq!(found.method, Method::Mx, "{tried}");
    assert_eq!(found.provider.as_deref(), Some("microsoft"));
    assert_eq!(found.oauth2, Some(OAuthProvider::Microsoft));
    assert_eq!(found.servers[0].host, "outlook.office365.com");
    assert_eq!(
        found.servers[0].username.as_deref(),
        Some("ann@m365.example")
    );
    assert!(
        found
            .source
            .contains("m365-example.mail.protection.outlook.com"),
        "{}",
        found.source
    );
    // Only after SRV and both autoconfig URLs gave nothing.
    assert_eq!(found.tried.len(), 8, "{tried}");
    assert_eq!(seen.0.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn nothing_found_lists_every_step() {
    let dns = dns();
    let http = start_http(Seen::default()).await;
    let d = Discoverer::new(config(&dns, http));
    let e = d.discover("x@nothing.example").await.unwrap_err();
    let DiscoverError::NotFound { domain, tried } = &e else {
        panic!("{e:?}");
    };
    assert_eq!(domain, "nothing.example");
    let methods: Vec<Method> = tried.iter().map(|a| a.method).collect();
    assert_eq!(
        methods,
        [
            Method::Table,
            Method::Srv,
            Method::Srv,
            Method::Srv,
            Method::Srv,
            Method::Autoconfig,
            Method::Autoconfig,
            Method::Mx
        ]
    );
    let text = e.to_string();
    assert!(
        text.starts_with("no mail server settings found for nothing.example"),
        "{text}"
    );
    assert!(
        text.contains("_pop3s._tcp.nothing.example: no records"),
        "{text}"
    );
    assert!(text.contains("HTTP 404"), "{text}");

    assert!(text.contains("MX nothing.example: no records"), "{text}");
    let e = d.discover("x@ownmx.example").await.unwrap_err();
    assert!(
        e.to_string()
            .contains("MX ownmx.example: mx.ownmx.example: not a provider the table knows"),
        "{e}"
    );

    // A document that is not an autoconfig document is no answer either.
    let e = d.discover("x@garbage.example").await.unwrap_err();
    assert!(e.to_string().contains("not an autoconfig document"), "{e}");
}

#[tokio::test]
async fn a_hanging_server_and_a_hanging_dns_hit_the_timeouts() {
    let dns = dns();
    let http = start_http(Seen::default()).await;
    // One look-up: 1 s; a hanging autoconfig server costs that, twice.
    let d = Discoverer::new(DiscoveryConfig {
        lookup_timeout: Duration::from_secs(1),
        ..config(&dns, http)
    });
    let started = Instant::now();
    let e = d.discover("x@slow.example").await.unwrap_err();
    let took = started.elapsed();
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert!(e.to_string().contains("no answer within 1 s"), "{e}");

    // A DNS server that never answers, then a hanging web server: the
    // whole discovery stops at its deadline, and says what it skipped.
    let d = Discoverer::new(DiscoveryConfig {
        lookup_timeout: Duration::from_secs(2),
        total_timeout: Duration::from_secs(3),
        autoconfig_urls: vec![
            format!("http://{http}/first/slow.example/mail/config-v1.1.xml"),
            format!("http://{http}/second/slow.example/mail/config-v1.1.xml"),
        ],
        ..config(&dns, http)
    });
    let started = Instant::now();
    let e = d.discover("x@hang.example").await.unwrap_err();
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(2900) && took < Duration::from_millis(4500),
        "{took:?}"
    );
    let text = e.to_string();
    assert!(
        text.contains("_imaps._tcp.hang.example: no answer within 2 s"),
        "{text}"
    );
    assert!(text.contains("the discovery's 3 s were used up"), "{text}");
}

#[tokio::test]
async fn oversized_and_endless_documents_are_refused() {
    let dns = dns();
    let http = start_http(Seen::default()).await;
    let d = Discoverer::new(config(&dns, http));
    let started = Instant::now();
    let e = d.discover("x@big.example").await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5));
    let DiscoverError::NotFound { tried, .. } = &e else {
        panic!("{e:?}");
    };
    let autoconfig: Vec<&str> = tried
        .iter()
        .filter(|a| a.method == Method::Autoconfig)
        .map(|a| a.result.as_str())
        .collect();
    assert_eq!(
        autoconfig,
        [
            "the document is larger than 65536 bytes (refused)",
            "the document is larger than 65536 bytes (refused)"
        ],
        "{e}"
    );
}

#[tokio::test]
async fn redirects_are_limited() {
    let dns = dns();
    let http = start_http(Seen::default()).await;
    let d = Discoverer::new(config(&dns, http));
    let e = d.discover("x@loop.example").await.unwrap_err();
    assert!(e.to_string().contains("more than 3 redirects"), "{e}");
}

#[tokio::test]
async fn names_that_point_inside_are_refused_unless_allowed() {
    let dns = dns();
    let seen = Seen::default();
    let http = start_http(seen.clone()).await;
    let port = http.port();
    let d = Discoverer::new(DiscoveryConfig {
        allow_private_networks: false,
        autoconfig_urls: vec![format!(
            "http://localhost:{port}/second/{{domain}}/mail/config-v1.1.xml"
        )],
        ..config(&dns, http)
    });
    let e = d.discover("x@auto.example").await.unwrap_err();
    assert!(
        e.to_string()
            .contains("resolves only to loopback, private or link-local"),
        "{e}"
    );
    assert!(seen.0.lock().unwrap().is_empty());
}
