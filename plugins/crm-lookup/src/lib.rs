//! crm-lookup: a test plugin for the engine's outbound HTTP grant. Never
//! deploy it. It asks a CRM who the sender is, over `wasi:http`, with the
//! bearer token its binding's secret `CRM_TOKEN` holds, and attaches the
//! contact the CRM names (looked up in the directory, so only a party of
//! the tenant is attached).
//!
//! `{ "url": "http://127.0.0.1:PORT/contacts", "mode": "lookup" | "env",
//!    "max_redirects": 3 }`
//!
//! - `lookup` (default): `GET {url}?email={sender}` with
//!   `Authorization: Bearer $CRM_TOKEN` (none when unset). A 200 answer is
//!   `{"email": "..."}`; a 404 is no opinion; a 3xx with `Location` is
//!   followed by a new request (which the engine judges again), at most
//!   `max_redirects` times. Any failure is the plugin's error, with the
//!   `wasi:http` error code in it.
//! - `env`: quarantines with the environment it was given (`NAME=VALUE`
//!   pairs), for the tests that check which secrets an instance sees.

use intake_plugin_sdk::{Directory, Error, Matcher, Message, Plugin, Verdict};
use serde::Deserialize;
use wasip2::http::outgoing_handler;
use wasip2::http::types::{ErrorCode, Fields, Method, OutgoingRequest, Scheme};
use wasip2::io::streams::StreamError;

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Config {
    url: String,
    mode: String,
    max_redirects: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            url: String::new(),
            mode: "lookup".into(),
            max_redirects: 3,
        }
    }
}

struct CrmLookup {
    config: Config,
}

impl Plugin for CrmLookup {
    type Config = Config;

    fn new(config: Config) -> Result<Self, Error> {
        if config.mode == "lookup" && !config.url.starts_with("http") {
            return Err(Error::new("`url` is needed: the CRM's contacts endpoint"));
        }
        Ok(CrmLookup { config })
    }
}

/// What came back.
struct Answer {
    status: u16,
    location: Option<String>,
    body: Vec<u8>,
}

/// Percent-encodes a query value.
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn code(e: &ErrorCode) -> String {
    format!("{e:?}")
}

/// One GET, no redirects followed.
fn get(url: &str, token: Option<&str>) -> Result<Answer, String> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| format!("not a URL: {url}"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let headers = Fields::new();
    if let Some(token) = token {
        headers
            .append("authorization", format!("Bearer {token}").as_bytes())
            .map_err(|e| format!("header: {e:?}"))?;
    }
    let request = OutgoingRequest::new(headers);
    request.set_method(&Method::Get).map_err(|()| "method")?;
    let scheme = match scheme {
        "https" => Scheme::Https,
        "http" => Scheme::Http,
        other => Scheme::Other(other.into()),
    };
    request.set_scheme(Some(&scheme)).map_err(|()| "scheme")?;
    request
        .set_authority(Some(authority))
        .map_err(|()| "authority")?;
    request
        .set_path_with_query(Some(path))
        .map_err(|()| "path")?;
    let pending = outgoing_handler::handle(request, None)
        .map_err(|e| format!("request refused: {}", code(&e)))?;
    let response = loop {
        match pending.get() {
            Some(result) => break result,
            None => pending.subscribe().block(),
        }
    };
    let response = response
        .map_err(|()| "response taken twice".to_string())?
        .map_err(|e| format!("request failed: {}", code(&e)))?;
    let status = response.status();
    let location = response
        .headers()
        .get("location")
        .first()
        .map(|v| String::from_utf8_lossy(v).into_owned());
    let body = response.consume().map_err(|()| "body taken twice")?;
    let stream = body.stream().map_err(|()| "stream taken twice")?;
    let mut bytes = Vec::new();
    loop {
        match stream.blocking_read(64 << 10) {
            Ok(chunk) => bytes.extend_from_slice(&chunk),
            Err(StreamError::Closed) => break,
            Err(StreamError::LastOperationFailed(e)) => {
                let detail = wasip2::http::types::http_error_code(&e)
                    .map_or_else(|| e.to_debug_string(), |c| code(&c));
                return Err(format!("reading the response failed: {detail}"));
            }
        }
    }
    drop(stream);
    drop(body);
    Ok(Answer {
        status,
        location,
        body: bytes,
    })
}

impl Matcher for CrmLookup {
    fn match_message(
        &self,
        message: &Message,
        directory: &dyn Directory,
    ) -> Result<Verdict, Error> {
        if self.config.mode == "env" {
            let env: Vec<String> = std::env::vars().map(|(k, v)| format!("{k}={v}")).collect();
            return Ok(Verdict::quarantine(format!("env: [{}]", env.join(";"))));
        }
        let Some(sender) = message.sender_address() else {
            return Ok(Verdict::no_opinion());
        };
        let token = std::env::var("CRM_TOKEN").ok();
        let mut url = format!("{}?email={}", self.config.url, encode(sender));
        let mut redirects = 0;
        let answer = loop {
            let answer = get(&url, token.as_deref()).map_err(Error::new)?;
            match (answer.status, &answer.location) {
                (300..=399, Some(location)) if redirects < self.config.max_redirects => {
                    redirects += 1;
                    url = location.clone();
                }
                _ => break answer,
            }
        };
        match answer.status {
            200 => {}
            404 => return Ok(Verdict::no_opinion()),
            other => return Err(Error::new(format!("the CRM answered {other}"))),
        }
        #[derive(Deserialize)]
        struct Found {
            email: String,
        }
        let found: Found = serde_json::from_slice(&answer.body)
            .map_err(|e| Error::new(format!("the CRM's answer is not understood: {e}")))?;
        let parties = directory.find_by_address(&found.email)?;
        Ok(Verdict::attach(
            parties.parties.iter().map(|p| p.to_ref()).collect(),
        ))
    }
}

intake_plugin_sdk::export_plugin!(CrmLookup: matcher);
