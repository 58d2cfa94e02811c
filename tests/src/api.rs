//! `intake serve` as a process for the HTTP API tests and benchmarks, and a
//! small HTTP/1.1 client (plain or TLS) that shows everything a response
//! carries: status, headers and the exact body.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The operator credential the harness starts the service with.
pub const OPERATOR: &str = "operator-credential-for-tests-0123456789";

/// A running `intake serve` with the API.
pub struct ApiServe {
    child: Child,
    /// Its HTTP address.
    pub addr: String,
    /// Whether it serves HTTPS.
    pub tls: bool,
    /// Everything it wrote to stderr so far.
    log: Arc<Mutex<String>>,
}

/// A fresh SQLite store in `dir` for [`ApiServe::start`]: a new master key
/// file and the database URL.
pub fn sqlite_store(dir: &Path) -> (PathBuf, String) {
    let key = dir.join("intake.key");
    std::fs::write(
        &key,
        intake::store::MasterKey::generate().unwrap().to_base64(),
    )
    .unwrap();
    let db = format!("sqlite://{}?mode=rwc", dir.join("intake.db").display());
    (key, db)
}

/// Creates `tenant` as the operator and issues it an admin token.
pub async fn tenant_token(serve: &ApiServe, tenant: &str) -> String {
    let operator = serve.client(Some(OPERATOR));
    let r = operator
        .json(
            "POST",
            "/v1/tenants",
            &serde_json::json!({ "name": tenant }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let r = operator
        .json(
            "POST",
            &format!("/v1/tenants/{tenant}/tokens"),
            &serde_json::json!({ "name": "console", "scope": "admin" }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    r.json()["token"].as_str().unwrap().to_owned()
}

impl ApiServe {
    /// Starts `binary serve` on `db_url` with the operator credential in
    /// `INTAKE_ADMIN_TOKEN`, a fast tick, and `extra` flags.
    pub fn start(binary: &Path, db_url: &str, key_file: &Path, extra: &[&str]) -> ApiServe {
        Self::start_env(binary, db_url, key_file, extra, &[])
    }

    /// [`start`](Self::start) with extra environment.
    pub fn start_env(
        binary: &Path,
        db_url: &str,
        key_file: &Path,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> ApiServe {
        let mut cmd = Command::new(binary);
        cmd.args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--tick-ms",
            "200",
            "--lease-secs",
            "3",
            "--backoff-secs",
            "1",
            "--backoff-max-secs",
            "2",
        ])
        .args(extra)
        .env("INTAKE_DATABASE_URL", db_url)
        .env("INTAKE_KEY_FILE", key_file)
        .env("INTAKE_PLUGIN_DIR", crate::plugin_dir())
        .env("INTAKE_ADMIN_TOKEN", OPERATOR)
        .env("INTAKE_LOG", "warn,intake=info")
        // Tests say so with the flag when they want it.
        .env_remove("INTAKE_WEBHOOK_ALLOW_PRIVATE_NETWORKS")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("start intake serve");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        {
            let log = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    for (scheme, tls) in [("http://", false), ("https://", true)] {
                        if let Some(rest) = line.strip_prefix(&format!("intake serve: {scheme}")) {
                            let addr = rest.split('/').next().unwrap_or_default().to_string();
                            let _ = tx.send((addr, tls));
                        }
                    }
                    let mut log = log.lock().unwrap();
                    log.push_str(&line);
                    log.push('\n');
                }
            });
        }
        let (addr, tls) = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("intake serve did not start: {}", log.lock().unwrap()));
        ApiServe {
            child,
            addr,
            tls,
            log,
        }
    }

    /// What the service logged so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the process at once (SIGKILL).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// A client of this service with `token`.
    pub fn client(&self, token: Option<&str>) -> Client {
        Client {
            addr: self.addr.clone(),
            token: token.map(str::to_owned),
            tenant: None,
            tls: None,
        }
    }
}

impl Drop for ApiServe {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A response, as it came.
#[derive(Debug, Clone)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// Header names (lower-case) and values.
    pub headers: Vec<(String, String)>,
    /// The body, de-chunked.
    pub body: Vec<u8>,
}

impl Response {
    /// The body as JSON (panics with the body when it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}), status {}: {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// An HTTP client for one service and credential.
#[derive(Clone)]
pub struct Client {
    /// `host:port`.
    pub addr: String,
    /// Bearer token.
    pub token: Option<String>,
    /// `Intake-Tenant` (the operator acting in a tenant).
    pub tenant: Option<String>,
    /// TLS, trusting this connector's roots.
    pub tls: Option<tokio_rustls::TlsConnector>,
}

impl Client {
    /// `GET path`.
    pub async fn get(&self, path: &str) -> Response {
        self.send("GET", path, None).await
    }

    /// `DELETE path`.
    pub async fn delete(&self, path: &str) -> Response {
        self.send("DELETE", path, None).await
    }

    /// `method path` with a JSON body.
    pub async fn json(&self, method: &str, path: &str, body: &serde_json::Value) -> Response {
        self.send(
            method,
            path,
            Some(("application/json", serde_json::to_vec(body).unwrap())),
        )
        .await
    }

    /// `method path` with a body of `content_type`.
    pub async fn send(&self, method: &str, path: &str, body: Option<(&str, Vec<u8>)>) -> Response {
        self.send_with(method, path, &[], body).await
    }

    /// [`send`](Self::send) with extra request headers (a cookie, an
    /// `Origin`).
    pub async fn send_with(
        &self,
        method: &str,
        path: &str,
        extra: &[(&str, &str)],
        body: Option<(&str, Vec<u8>)>,
    ) -> Response {
        let mut head =
            format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
        for (name, value) in extra {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        if let Some(token) = &self.token {
            head.push_str(&format!("Authorization: Bearer {token}\r\n"));
        }
        if let Some(tenant) = &self.tenant {
            head.push_str(&format!("Intake-Tenant: {tenant}\r\n"));
        }
        let body = match body {
            Some((ct, bytes)) => {
                head.push_str(&format!(
                    "Content-Type: {ct}\r\nContent-Length: {}\r\n",
                    bytes.len()
                ));
                bytes
            }
            None => {
                if method != "GET" && method != "DELETE" {
                    head.push_str("Content-Length: 0\r\n");
                }
                Vec::new()
            }
        };
        head.push_str("\r\n");
        let mut request = head.into_bytes();
        request.extend_from_slice(&body);
        let tcp = tokio::net::TcpStream::connect(&self.addr)
            .await
            .unwrap_or_else(|e| panic!("connect {}: {e}", self.addr));
        match &self.tls {
            None => exchange(tcp, &request).await,
            Some(connector) => {
                let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
                let stream = connector.connect(name, tcp).await.expect("TLS handshake");
                exchange(stream, &request).await
            }
        }
    }
}

async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S, request: &[u8]) -> Response {
    stream.write_all(request).await.unwrap();
    let mut raw = Vec::new();
    // A server that closes without close_notify is still a full answer
    // when the body is complete.
    let _ = stream.read_to_end(&mut raw).await;
    parse(&raw)
}

fn parse(raw: &[u8]) -> Response {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP head in {:?}", String::from_utf8_lossy(raw)));
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    if headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.contains("chunked"))
    {
        body = dechunk(&body);
    }
    Response {
        status,
        headers,
        body,
    }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(end) = data.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size_text = String::from_utf8_lossy(&data[..end]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("0").trim(), 16)
            .unwrap_or(0);
        if size == 0 {
            return out;
        }
        let start = end + 2;
        out.extend_from_slice(&data[start..(start + size).min(data.len())]);
        data = &data[(start + size + 2).min(data.len())..];
    }
}

/// A TLS connector trusting the CA in `ca_pem`.
pub fn tls_connector(ca_pem: &Path) -> tokio_rustls::TlsConnector {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca_pem).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}
