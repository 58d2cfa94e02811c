//! Mozilla-style autoconfig documents (`config-v1.1.xml`): fetching one
//! within limits, and reading its incoming servers.
//!
//! The document is outside input from whoever runs the domain's web
//! server: it is fetched with a timeout, at most [`super::DiscoveryConfig::
//! max_body`] bytes and a few redirects (never from https to http), parsed
//! without a DTD and with a node limit, and only what validates is kept — a
//! host name that is a host name, a port, a known socket type — so nothing
//! of it is printed or stored unchecked.

use std::time::Duration;

use super::presets::OAuthProvider;
use super::{Authentication, ServerSettings, valid_host};
use crate::domain::{Protocol, Security};

/// The most incoming servers kept from one document.
const MAX_SERVERS: usize = 8;
/// The most XML nodes parsed.
const MAX_NODES: u32 = 5_000;
/// The longest display name kept.
const MAX_NAME: usize = 200;

/// What a document says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Autoconfig {
    /// The provider's display name, if it gives one (bounded, inert).
    pub display_name: Option<String>,
    /// Incoming IMAP and POP3 servers in the document's order (its order
    /// is its preference).
    pub servers: Vec<ServerSettings>,
    /// The OAuth2 provider its `<oAuth2><issuer>` names, when Intake
    /// knows it.
    pub oauth2: Option<OAuthProvider>,
    /// Servers skipped, and why.
    pub skipped: Vec<String>,
}

/// Why a document gave nothing.
#[derive(Debug, thiserror::Error)]
pub enum AutoconfigError {
    /// The request failed (connection, TLS, a refused redirect, …).
    #[error("request failed: {0}")]
    Http(String),
    /// No answer in time.
    #[error("no answer within {} s", .0.as_secs())]
    Timeout(Duration),
    /// The server answered with an error status.
    #[error("HTTP {0}")]
    Status(u16),
    /// The body was larger than allowed.
    #[error("the document is larger than {0} bytes (refused)")]
    TooLarge(usize),
    /// The body is not text.
    #[error("the document is not UTF-8")]
    NotText,
    /// The body is not well-formed XML (or has a DTD, or too many nodes).
    #[error("not an XML document Intake reads: {0}")]
    NotXml(String),
    /// The XML is not a `clientConfig` with an `emailProvider`.
    #[error("not an autoconfig document (no clientConfig/emailProvider)")]
    NotAutoconfig,
    /// It lists no IMAP or POP3 server Intake can use.
    #[error("no IMAP or POP3 server in it{}", skipped_text(.0))]
    NoServers(Vec<String>),
}

fn skipped_text(skipped: &[String]) -> String {
    if skipped.is_empty() {
        String::new()
    } else {
        format!(" ({})", skipped.join("; "))
    }
}

/// Reads a `config-v1.1.xml` document for `email`: `%EMAILADDRESS%`,
/// `%EMAILLOCALPART%` and `%EMAILDOMAIN%` in host and user names are
/// replaced.
pub fn parse(xml: &str, email: &str) -> Result<Autoconfig, AutoconfigError> {
    let options = roxmltree::ParsingOptions {
        allow_dtd: false,
        nodes_limit: MAX_NODES,
        ..roxmltree::ParsingOptions::default()
    };
    let doc = roxmltree::Document::parse_with_options(xml, options)
        .map_err(|e| AutoconfigError::NotXml(e.to_string()))?;
    let root = doc.root_element();
    if root.tag_name().name() != "clientConfig" {
        return Err(AutoconfigError::NotAutoconfig);
    }
    let provider = child(root, "emailProvider").ok_or(AutoconfigError::NotAutoconfig)?;
    let (local, domain) = email.rsplit_once('@').unwrap_or((email, ""));
    let substitute = |text: &str| {
        text.replace("%EMAILADDRESS%", email)
            .replace("%EMAILLOCALPART%", local)
            .replace("%EMAILDOMAIN%", domain)
    };
    let display_name = child(provider, "displayName")
        .and_then(|n| n.text())
        .map(|t| crate::text::bounded(t.trim(), MAX_NAME))
        .filter(|t| !t.is_empty());
    let mut servers = Vec::new();
    let mut skipped = Vec::new();
    for (index, server) in provider
        .children()
        .filter(|n| n.has_tag_name("incomingServer"))
        .enumerate()
    {
        if servers.len() >= MAX_SERVERS {
            break;
        }
        match incoming(server, &substitute) {
            Ok(Some(s)) => {
                if !servers.contains(&s) {
                    servers.push(s);
                }
            }
            Ok(None) => {}
            Err(why) => skipped.push(format!("incomingServer #{}: {why}", index + 1)),
        }
    }
    let oauth2 = child(root, "oAuth2")
        .or_else(|| child(provider, "oAuth2"))
        .and_then(|o| child(o, "issuer"))
        .and_then(|n| n.text())
        .and_then(|issuer| OAuthProvider::for_host(issuer.trim()));
    if servers.is_empty() {
        return Err(AutoconfigError::NoServers(skipped));
    }
    Ok(Autoconfig {
        display_name,
        servers,
        oauth2,
        skipped,
    })
}

fn child<'a, 'i>(node: roxmltree::Node<'a, 'i>, name: &str) -> Option<roxmltree::Node<'a, 'i>> {
    node.children().find(|n| n.has_tag_name(name))
}

fn text_of<'a>(node: roxmltree::Node<'a, '_>, name: &str) -> Option<&'a str> {
    child(node, name).and_then(|n| n.text()).map(str::trim)
}

/// One `<incomingServer>`: `Ok(None)` for types Intake does not speak
/// (Exchange, JMAP, …), `Err` for a malformed IMAP or POP3 entry.
fn incoming(
    server: roxmltree::Node<'_, '_>,
    substitute: &dyn Fn(&str) -> String,
) -> Result<Option<ServerSettings>, String> {
    let protocol = match server.attribute("type") {
        Some("imap") => Protocol::Imap,
        Some("pop3") => Protocol::Pop3,
        _ => return Ok(None),
    };
    let host = text_of(server, "hostname").ok_or("no hostname")?;
    let host = substitute(host).trim_end_matches('.').to_ascii_lowercase();
    if !valid_host(&host) {
        return Err("the hostname is not a host name".into());
    }
    let port: u16 = text_of(server, "port")
        .and_then(|p| p.parse().ok())
        .filter(|p| *p != 0)
        .ok_or("no valid port")?;
    let security = match text_of(server, "socketType") {
        Some(t) if t.eq_ignore_ascii_case("SSL") || t.eq_ignore_ascii_case("TLS") => Security::Tls,
        Some(t) if t.eq_ignore_ascii_case("STARTTLS") => Security::Starttls,
        Some(t) if t.eq_ignore_ascii_case("plain") => Security::None,
        _ => return Err("no known socketType (SSL, STARTTLS or plain)".into()),
    };
    let username = text_of(server, "username")
        .map(substitute)
        .filter(|u| !u.is_empty() && u.len() <= 254 && crate::text::neutralize(u) == u.as_str());
    let mut authentication = Vec::new();
    for method in server
        .children()
        .filter(|n| n.has_tag_name("authentication"))
        .filter_map(|n| n.text())
    {
        let method = match method.trim() {
            "password-cleartext" | "plain" => Authentication::Password,
            "OAuth2" => Authentication::OAuth2,
            _ => Authentication::Other,
        };
        if !authentication.contains(&method) {
            authentication.push(method);
        }
    }
    if authentication.is_empty() {
        authentication.push(Authentication::Password);
    }
    Ok(Some(ServerSettings {
        protocol,
        host,
        port,
        security,
        username,
        authentication,
    }))
}

/// Fetches `url` with `client` (whose redirect policy and resolver hold the
/// network rules), reading at most `max_body` bytes within `timeout`.
pub async fn fetch(
    client: &reqwest::Client,
    url: &str,
    timeout: Duration,
    max_body: usize,
) -> Result<String, AutoconfigError> {
    let read = async {
        let mut response = client
            .get(url)
            .header(reqwest::header::ACCEPT, "application/xml, text/xml")
            .send()
            .await
            .map_err(|e| AutoconfigError::Http(describe(&e)))?;
        let status = response.status();
        if !status.is_success() {
            return Err(AutoconfigError::Status(status.as_u16()));
        }
        if response
            .content_length()
            .is_some_and(|n| n > max_body as u64)
        {
            return Err(AutoconfigError::TooLarge(max_body));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| AutoconfigError::Http(describe(&e)))?
        {
            if body.len() + chunk.len() > max_body {
                return Err(AutoconfigError::TooLarge(max_body));
            }
            body.extend_from_slice(&chunk);
        }
        String::from_utf8(body).map_err(|_| AutoconfigError::NotText)
    };
    match tokio::time::timeout(timeout, read).await {
        Ok(result) => result,
        Err(_) => Err(AutoconfigError::Timeout(timeout)),
    }
}

/// A request error in a line: reqwest's own text and its causes.
fn describe(error: &reqwest::Error) -> String {
    use std::error::Error as _;
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    crate::text::bounded(&text, 600)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<clientConfig version="1.1">
  <emailProvider id="example.com">
    <domain>example.com</domain>
    <displayName>Example Mail</displayName>
    <displayShortName>Example</displayShortName>
    <incomingServer type="imap">
      <hostname>imap.%EMAILDOMAIN%</hostname>
      <port>993</port>
      <socketType>SSL</socketType>
      <authentication>password-cleartext</authentication>
      <authentication>OAuth2</authentication>
      <username>%EMAILADDRESS%</username>
    </incomingServer>
    <incomingServer type="imap">
      <hostname>imap.example.com</hostname>
      <port>143</port>
      <socketType>STARTTLS</socketType>
      <authentication>password-encrypted</authentication>
      <username>%EMAILLOCALPART%</username>
    </incomingServer>
    <incomingServer type="pop3">
      <hostname>pop.example.com</hostname>
      <port>995</port>
      <socketType>SSL</socketType>
      <username>%EMAILLOCALPART%</username>
    </incomingServer>
    <incomingServer type="exchange">
      <hostname>ews.example.com</hostname>
    </incomingServer>
    <outgoingServer type="smtp">
      <hostname>smtp.example.com</hostname>
      <port>465</port>
      <socketType>SSL</socketType>
    </outgoingServer>
  </emailProvider>
  <oAuth2>
    <issuer>accounts.google.com</issuer>
    <scope>https://mail.google.com/</scope>
  </oAuth2>
</clientConfig>"#;

    #[test]
    fn a_full_document_is_read() {
        let c = parse(FULL, "ann.lee@example.com").unwrap();
        assert_eq!(c.display_name.as_deref(), Some("Example Mail"));
        assert_eq!(c.oauth2, Some(OAuthProvider::Google));
        assert_eq!(c.servers.len(), 3, "{c:?}");
        let first = &c.servers[0];
        assert_eq!(
            (
                first.protocol,
                first.host.as_str(),
                first.port,
                first.security
            ),
            (Protocol::Imap, "imap.example.com", 993, Security::Tls)
        );
        assert_eq!(first.username.as_deref(), Some("ann.lee@example.com"));
        assert_eq!(
            first.authentication,
            [Authentication::Password, Authentication::OAuth2]
        );
        assert_eq!(c.servers[1].security, Security::Starttls);
        assert_eq!(c.servers[1].username.as_deref(), Some("ann.lee"));
        assert_eq!(c.servers[1].authentication, [Authentication::Other]);
        assert_eq!(c.servers[2].protocol, Protocol::Pop3);
        assert_eq!(c.servers[2].authentication, [Authentication::Password]);
        assert!(c.skipped.is_empty(), "{:?}", c.skipped);
    }

    #[test]
    fn malformed_servers_are_skipped_with_a_reason() {
        let xml = r#"<clientConfig><emailProvider>
            <incomingServer type="imap"><hostname>imap.example.com</hostname><port>99999</port><socketType>SSL</socketType></incomingServer>
            <incomingServer type="imap"><hostname>evil host; rm -rf</hostname><port>993</port><socketType>SSL</socketType></incomingServer>
            <incomingServer type="pop3"><hostname>pop.example.com</hostname><port>110</port><socketType>carrier-pigeon</socketType></incomingServer>
            <incomingServer type="pop3"><port>110</port><socketType>plain</socketType></incomingServer>
            <incomingServer type="imap"><hostname>ok.example.com</hostname><port>143</port><socketType>plain</socketType></incomingServer>
        </emailProvider></clientConfig>"#;
        let c = parse(xml, "a@example.com").unwrap();
        assert_eq!(c.servers.len(), 1);
        assert_eq!(c.servers[0].security, Security::None);
        assert_eq!(c.skipped.len(), 4, "{:?}", c.skipped);
        assert!(c.skipped[0].contains("port"), "{:?}", c.skipped);
        assert!(c.skipped[1].contains("hostname"), "{:?}", c.skipped);
    }

    #[test]
    fn hostile_and_garbage_documents_are_refused() {
        let billion_laughs = r#"<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<clientConfig><emailProvider><displayName>&lol3;</displayName></emailProvider></clientConfig>"#;
        assert!(matches!(
            parse(billion_laughs, "a@example.com"),
            Err(AutoconfigError::NotXml(_))
        ));
        let external = r#"<?xml version="1.0"?><!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<clientConfig><emailProvider><incomingServer type="imap"><hostname>&xxe;</hostname></incomingServer></emailProvider></clientConfig>"#;
        assert!(matches!(
            parse(external, "a@example.com"),
            Err(AutoconfigError::NotXml(_))
        ));
        for garbage in [
            "",
            "not xml at all",
            "<clientConfig><emailProvider>",
            "\u{0}\u{1}\u{2}",
            "<html><body>It works!</body></html>",
            "<clientConfig/>",
        ] {
            assert!(parse(garbage, "a@example.com").is_err(), "{garbage:?}");
        }
        // Deep nesting and many nodes stop at the node limit.
        let deep = format!(
            "<clientConfig><emailProvider>{}{}</emailProvider></clientConfig>",
            "<a>".repeat(20_000),
            "</a>".repeat(20_000)
        );
        assert!(matches!(
            parse(&deep, "a@example.com"),
            Err(AutoconfigError::NotXml(_))
        ));
        let many = format!(
            "<clientConfig><emailProvider>{}</emailProvider></clientConfig>",
            "<incomingServer type=\"imap\"><hostname>h.example.com</hostname><port>993</port><socketType>SSL</socketType></incomingServer>".repeat(2_000)
        );
        assert!(parse(&many, "a@example.com").is_err());
        // No usable server: the reason lists what was skipped.
        let none = r#"<clientConfig><emailProvider><incomingServer type="imap"><hostname>x.example.com</hostname></incomingServer></emailProvider></clientConfig>"#;
        let e = parse(none, "a@example.com").unwrap_err();
        assert!(e.to_string().contains("no valid port"), "{e}");
    }

    #[test]
    fn display_names_are_made_inert() {
        // (XML 1.0 refuses raw control characters; bidirectional overrides
        // are well-formed and must still be made inert.)
        let xml = "<clientConfig><emailProvider><displayName>Evil\u{2066}\u{202e}Mail</displayName>\
            <incomingServer type=\"imap\"><hostname>imap.example.com</hostname><port>993</port>\
            <socketType>SSL</socketType></incomingServer></emailProvider></clientConfig>";
        let c = parse(xml, "a@example.com").unwrap();
        let name = c.display_name.unwrap();
        assert!(
            !name.contains('\u{2066}') && !name.contains('\u{202e}'),
            "{name:?}"
        );
    }
}
