//! Real servers on loopback for the retrieval tests: a private Dovecot
//! (IMAP and POP3, plain / STARTTLS / implicit TLS with a generated CA),
//! microsocks as the SOCKS5 proxy, and a TCP relay that cuts the connection
//! after a number of bytes to inject a mid-FETCH failure.
//!
//! Each instance has its own directory, ephemeral ports and users; it is
//! stopped when dropped. Dovecot and microsocks come from Debian's packages;
//! `./dev test` installs them when missing.

use std::io::Write;
use std::net::{SocketAddr, TcpListener as StdListener, TcpStream as StdStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use intake::fetch::{AccountSettings, Protocol, ProxySettings, Secret, Security};
use tempfile::TempDir;

/// The test user every Dovecot instance has.
pub const USER: &str = "alice";
/// Her password.
pub const PASSWORD: &str = "correct horse";

fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .expect("bind an ephemeral port")
        .local_addr()
        .unwrap()
        .port()
}

/// Waits until `port` answers: true; false if the child exited first (a lost
/// port race), unless `last`, when that is a failure with the log.
fn listening(port: u16, child: &mut Child, what: &str, log: &Path, last: bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if StdStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        if let Ok(Some(status)) = child.try_wait() {
            if !last {
                return false;
            }
            panic!(
                "{what} exited early ({status}); log:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!(
        "{what} did not listen on port {port}; log:\n{}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
}

fn wait_for_port(port: u16, child: &mut Child, what: &str, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if StdStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "{what} exited early ({status}); log:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!(
        "{what} did not listen on port {port}; log:\n{}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
}

/// The uid/gid mail processes run as: Dovecot refuses uid 0, so when the
/// tests run as root the instance uses Debian's `mail` user; otherwise the
/// current user.
fn mail_owner() -> (u32, u32) {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let me = current_uid();
    if me != 0 {
        return (me, me);
    }
    passwd
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() < 4 || f[0] != "mail" {
                return None;
            }
            Some((f[2].parse().ok()?, f[3].parse().ok()?))
        })
        .unwrap_or((8, 8))
}

/// The current uid, read from /proc (no libc needed).
fn current_uid() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))?
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

/// Creates `dir` (and parents below the instance root) owned by the mail user.
fn make_owned_dir(dir: &Path, owner: (u32, u32)) {
    std::fs::create_dir_all(dir).unwrap();
    std::os::unix::fs::chown(dir, Some(owner.0), Some(owner.1)).unwrap();
}

fn require(binary: &str, package: &str) -> PathBuf {
    for dir in ["/usr/sbin", "/usr/bin", "/usr/local/bin", "/usr/local/sbin"] {
        let p = Path::new(dir).join(binary);
        if p.exists() {
            return p;
        }
    }
    panic!(
        "{binary} is not installed: run ./dev test (it installs {package} from Debian's packages)"
    );
}

/// A generated CA and a server certificate for `localhost` / 127.0.0.1.
pub struct TestCertificates {
    /// CA certificate, PEM (what an account's CA file points at).
    pub ca_pem: PathBuf,
    /// Server certificate chain, PEM.
    pub cert_pem: PathBuf,
    /// Server key, PEM.
    pub key_pem: PathBuf,
    /// The server's own certificate, DER (what a pin fingerprints).
    pub server_der: Vec<u8>,
}

impl TestCertificates {
    /// Generates both into `dir`.
    pub fn generate(dir: &Path) -> Self {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "Intake Test CA");
        ca_params
            .distinguished_name
            .push(DnType::OrganizationName, "Intake tests");
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);

        let key = KeyPair::generate().unwrap();
        let mut params =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        let cert = params.signed_by(&key, &issuer).unwrap();

        let certs = TestCertificates {
            ca_pem: dir.join("ca.pem"),
            cert_pem: dir.join("server.pem"),
            key_pem: dir.join("server.key"),
            server_der: cert.der().to_vec(),
        };
        std::fs::write(&certs.ca_pem, ca_cert.pem()).unwrap();
        std::fs::write(&certs.cert_pem, format!("{}{}", cert.pem(), ca_cert.pem())).unwrap();
        std::fs::write(&certs.key_pem, key.serialize_pem()).unwrap();
        certs
    }

    /// One certificate for `localhost` that is its own CA, what `openssl
    /// req -x509` makes and private servers often use: the CA file and the
    /// server's certificate are the same. Each call makes a new one.
    pub fn self_signed(dir: &Path) -> Self {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
        let key = KeyPair::generate().unwrap();
        let mut params =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        params
            .distinguished_name
            .push(DnType::OrganizationName, "Intake self-signed");
        let cert = params.self_signed(&key).unwrap();
        let certs = TestCertificates {
            ca_pem: dir.join("server.pem"),
            cert_pem: dir.join("server.pem"),
            key_pem: dir.join("server.key"),
            server_der: cert.der().to_vec(),
        };
        std::fs::write(&certs.cert_pem, cert.pem()).unwrap();
        std::fs::write(&certs.key_pem, key.serialize_pem()).unwrap();
        certs
    }

    /// The SHA-256 fingerprint of the server's certificate, as an account
    /// pins it.
    pub fn pin(&self) -> intake::domain::CertificatePin {
        intake::domain::CertificatePin::of(&self.server_der)
    }
}

/// How to start Dovecot.
#[derive(Debug, Clone, Copy)]
pub struct DovecotOptions {
    /// Offer TLS (STARTTLS and the implicit-TLS ports). Without it, STARTTLS
    /// is not advertised, for the refusal test.
    pub tls: bool,
    /// Advertise IDLE (Dovecot does by default).
    pub idle: bool,
    /// Users `user0` … `user{n-1}` (password `pw`), besides alice and bob.
    pub extra_users: usize,
    /// Dovecot's `mail_max_userip_connections` (its default is 10).
    pub max_userip_connections: u32,
    /// Dovecot's `default_process_limit` (its default is 100): IMAP
    /// sessions at once, so raise it to hold many IDLE connections.
    pub process_limit: u32,
    /// Serve a self-signed certificate that is its own CA (see
    /// [`TestCertificates::self_signed`]) instead of one issued by the
    /// test CA.
    pub self_signed: bool,
}

impl Default for DovecotOptions {
    fn default() -> Self {
        DovecotOptions {
            tls: true,
            idle: true,
            extra_users: 0,
            max_userip_connections: 10,
            process_limit: 100,
            self_signed: false,
        }
    }
}

/// The password of the extra users.
pub const EXTRA_PASSWORD: &str = "pw";

/// A private Dovecot on loopback.
pub struct Dovecot {
    dir: TempDir,
    /// uid/gid of the mail processes.
    owner: (u32, u32),
    child: Child,
    /// Plain IMAP (STARTTLS-capable when TLS is on).
    pub imap_port: u16,
    /// Implicit-TLS IMAP (only with TLS on).
    pub imaps_port: u16,
    /// Plain POP3 (STLS-capable when TLS is on).
    pub pop3_port: u16,
    /// Implicit-TLS POP3 (only with TLS on).
    pub pop3s_port: u16,
    /// The test CA.
    pub certs: TestCertificates,
    next_file: AtomicU64,
}

impl Dovecot {
    /// Starts an instance with TLS.
    pub fn start() -> Self {
        Self::start_with(DovecotOptions::default())
    }

    /// Starts an instance.
    pub fn start_with(options: DovecotOptions) -> Self {
        Self::start_inner(options, None)
    }

    /// Starts an instance whose users sign in with OAuth2 bearer tokens
    /// only (SASL XOAUTH2 and OAUTHBEARER), through Dovecot's `oauth2`
    /// passdb asking `introspection_url` (RFC 7662) about each token.
    pub fn start_oauth2(options: DovecotOptions, introspection_url: &str) -> Self {
        Self::start_inner(options, Some(introspection_url))
    }

    fn start_inner(options: DovecotOptions, introspection_url: Option<&str>) -> Self {
        let binary = require("dovecot", "dovecot-imapd and dovecot-pop3d");
        let dir = tempfile::Builder::new()
            .prefix("intake-dovecot-")
            .tempdir()
            .unwrap();
        let root = dir.path();
        let owner = mail_owner();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o755)).unwrap();
        for sub in ["run", "state"] {
            std::fs::create_dir_all(root.join(sub)).unwrap();
        }
        for sub in ["mail", "home", &format!("home/{USER}"), "home/bob"] {
            make_owned_dir(&root.join(sub), owner);
        }
        for n in 0..options.extra_users {
            make_owned_dir(&root.join(format!("home/user{n}")), owner);
        }
        let certs = if options.self_signed {
            TestCertificates::self_signed(root)
        } else {
            TestCertificates::generate(root)
        };
        let mut attempt = 0;
        let mut users = format!("{USER}:{{PLAIN}}{PASSWORD}::::::\nbob:{{PLAIN}}bobpw::::::\n");
        for n in 0..options.extra_users {
            users.push_str(&format!("user{n}:{{PLAIN}}{EXTRA_PASSWORD}::::::\n"));
        }
        std::fs::write(root.join("users"), users).unwrap();
        let (mechanisms, passdb) = match introspection_url {
            None => (
                "plain login".to_string(),
                format!(
                    "passdb {{\n  driver = passwd-file\n  args = scheme=PLAIN username_format=%u {}/users\n}}\n",
                    root.display()
                ),
            ),
            Some(url) => {
                std::fs::write(
                    root.join("oauth2.conf"),
                    format!(
                        "introspection_mode = post\nintrospection_url = {url}\n\
                         username_attribute = username\nactive_attribute = active\nactive_value = true\n"
                    ),
                )
                .unwrap();
                (
                    "xoauth2 oauthbearer".to_string(),
                    format!(
                        "passdb {{\n  driver = oauth2\n  mechanisms = xoauth2 oauthbearer\n  args = {}/oauth2.conf\n}}\n",
                        root.display()
                    ),
                )
            }
        };
        let (child, imap_port, imaps_port, pop3_port, pop3s_port) = loop {
            attempt += 1;
            let (imap_port, imaps_port, pop3_port, pop3s_port) =
                (free_port(), free_port(), free_port(), free_port());
            let ssl = if options.tls {
                format!(
                    "ssl = yes\nssl_cert = <{}\nssl_key = <{}\nssl_min_protocol = TLSv1.2\n",
                    certs.cert_pem.display(),
                    certs.key_pem.display()
                )
            } else {
                "ssl = no\n".to_string()
            };
            let tls_listeners = |name: &str, port: u16| {
                if options.tls {
                    format!("  inet_listener {name} {{\n    port = {port}\n    ssl = yes\n  }}\n")
                } else {
                    String::new()
                }
            };
            // Dovecot's own list, without IDLE, for the polling test.
            let capability = if options.idle {
                String::new()
            } else {
                "imap_capability = IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE LITERAL+ \
                 UIDPLUS MOVE NAMESPACE UNSELECT CHILDREN CONDSTORE\n"
                    .to_string()
            };
            let config = format!(
                "protocols = imap pop3\n\
                 {capability}\
                 mail_max_userip_connections = {max_userip}\n\
                 default_process_limit = {process_limit}\n\
                 default_client_limit = {client_limit}\n\
                 listen = 127.0.0.1\n\
                 base_dir = {root}/run\n\
                 state_dir = {root}/state\n\
                 log_path = {root}/dovecot.log\n\
                 info_log_path = {root}/dovecot.log\n\
                 {ssl}\
                 disable_plaintext_auth = no\n\
                 auth_mechanisms = {mechanisms}\n\
                 mail_location = maildir:{root}/mail/%u\n\
                 first_valid_uid = 1\n\
                 first_valid_gid = 1\n\
                 pop3_uidl_format = %08Xu%08Xv\n\
                 {passdb}\
                 userdb {{\n  driver = static\n  args = uid={uid} gid={gid} home={root}/home/%u\n}}\n\
                 service imap-login {{\n  inet_listener imap {{\n    port = {imap_port}\n  }}\n{imaps}}}\n\
                 service pop3-login {{\n  inet_listener pop3 {{\n    port = {pop3_port}\n  }}\n{pop3s}}}\n\
                 service anvil {{\n  chroot =\n}}\n",
                root = root.display(),
                uid = owner.0,
                gid = owner.1,
                imaps = tls_listeners("imaps", imaps_port),
                max_userip = options.max_userip_connections,
                process_limit = options.process_limit,
                client_limit = (options.process_limit * 10).max(1000),
                pop3s = tls_listeners("pop3s", pop3s_port),
            );
            let conf = root.join("dovecot.conf");
            std::fs::write(&conf, config).unwrap();
            let log = root.join("dovecot.log");
            let mut child = Command::new(&binary)
                .arg("-F")
                .arg("-c")
                .arg(&conf)
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(root.join("dovecot.stderr")).unwrap())
                .spawn()
                .expect("start dovecot");
            let mut ports = vec![imap_port, pop3_port];
            if options.tls {
                ports.extend([imaps_port, pop3s_port]);
            }
            // Ephemeral ports are picked by binding and releasing them, so a
            // parallel test can take one first; Dovecot then exits at once.
            // Try again with fresh ports rather than fail the test.
            let exited = ports
                .iter()
                .any(|&port| !listening(port, &mut child, "dovecot", &log, attempt == 3));
            if exited {
                let _ = child.wait();
                continue;
            }
            break (child, imap_port, imaps_port, pop3_port, pop3s_port);
        };
        Dovecot {
            dir,
            owner,
            child,
            imap_port,
            imaps_port,
            pop3_port,
            pop3s_port,
            certs,
            next_file: AtomicU64::new(1),
        }
    }

    /// The Maildir of `folder` (`INBOX` or another) of `user`.
    pub fn maildir(&self, user: &str, folder: &str) -> PathBuf {
        let base = self.dir.path().join("mail").join(user);
        make_owned_dir(&base, self.owner);
        let dir = if folder.eq_ignore_ascii_case("INBOX") {
            base
        } else {
            base.join(format!(".{folder}"))
        };
        for sub in ["", "cur", "new", "tmp"] {
            make_owned_dir(&dir.join(sub), self.owner);
        }
        dir
    }

    /// Delivers a message into a folder, seen or not.
    pub fn deliver(&self, user: &str, folder: &str, raw: &[u8], seen: bool) {
        self.deliver_at(user, folder, raw, seen, std::time::SystemTime::now());
    }

    /// Delivers a message with this arrival time (Dovecot's INTERNALDATE for
    /// Maildir is the file's modification time).
    pub fn deliver_at(
        &self,
        user: &str,
        folder: &str,
        raw: &[u8],
        seen: bool,
        arrived: std::time::SystemTime,
    ) {
        let dir = self.maildir(user, folder);
        let n = self.next_file.fetch_add(1, Ordering::Relaxed);
        let base = format!(
            "{}.M{n}P{}.intake-test",
            1_700_000_000 + n,
            std::process::id()
        );
        let (sub, name) = if seen {
            ("cur", format!("{base}:2,S"))
        } else {
            ("new", base)
        };
        let tmp = dir.join("tmp").join(&name);
        let mut file = std::fs::File::create(&tmp).unwrap();
        file.write_all(raw).unwrap();
        file.set_modified(arrived).unwrap();
        std::fs::rename(&tmp, dir.join(sub).join(&name)).unwrap();
    }

    /// Forces a new UIDVALIDITY on a folder, as after a server-side restore:
    /// Dovecot's index and UID list are replaced and UIDs restart from 1.
    pub fn reset_uid_validity(&self, user: &str, folder: &str, validity: u32) {
        let dir = self.maildir(user, folder);
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path
                .file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("dovecot.index")
            {
                std::fs::remove_file(&path).unwrap();
            }
        }
        let list = dir.join("dovecot-uidlist");
        std::fs::write(&list, format!("3 V{validity} N1\n")).unwrap();
        std::os::unix::fs::chown(&list, Some(self.owner.0), Some(self.owner.1)).unwrap();
    }

    /// Messages in a folder (files in new/ and cur/), with their flags.
    pub fn files(&self, user: &str, folder: &str) -> Vec<(String, bool)> {
        let dir = self.maildir(user, folder);
        let mut out = Vec::new();
        for sub in ["new", "cur"] {
            for entry in std::fs::read_dir(dir.join(sub)).unwrap() {
                let name = entry.unwrap().file_name().to_string_lossy().into_owned();
                let seen = name
                    .rsplit_once(":2,")
                    .is_some_and(|(_, flags)| flags.contains('S'));
                out.push((name, seen));
            }
        }
        out
    }

    /// Serves a new self-signed certificate from now on (the files are
    /// replaced and Dovecot reloads its configuration, as an admin renewing
    /// the certificate would); returns it. New connections get it once the
    /// reload is done, which takes a moment.
    pub fn renew_self_signed(&mut self) -> &TestCertificates {
        self.certs = TestCertificates::self_signed(self.dir.path());
        let status = Command::new("kill")
            .arg("-HUP")
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success(), "SIGHUP to dovecot");
        &self.certs
    }

    /// An account for `USER` on this server.
    pub fn account(&self, protocol: Protocol, security: Security) -> AccountSettings {
        let port = match (protocol, security) {
            (Protocol::Imap, Security::Tls) => self.imaps_port,
            (Protocol::Imap, _) => self.imap_port,
            (Protocol::Pop3, Security::Tls) => self.pop3s_port,
            (Protocol::Pop3, _) => self.pop3_port,
        };
        let mut a = AccountSettings::new(
            "test",
            protocol,
            "localhost",
            security,
            USER,
            Secret::new(PASSWORD),
        );
        a.port = Some(port);
        if security != Security::None {
            a.ca_file = Some(self.certs.ca_pem.clone());
        }
        a.timeouts.connect = Duration::from_secs(5);
        a.timeouts.io = Duration::from_secs(10);
        a
    }

    /// Dovecot's log, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("dovecot.log")).unwrap_or_default()
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        // SIGTERM lets the master stop its children; then reap it.
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// microsocks, a SOCKS5 proxy, on loopback.
pub struct Socks5 {
    child: Child,
    /// Its port.
    pub port: u16,
    /// Credentials it requires, if any.
    pub auth: Option<(String, String)>,
}

impl Socks5 {
    /// Starts microsocks, optionally requiring a user name and password.
    pub fn start(auth: Option<(&str, &str)>) -> Self {
        let binary = require("microsocks", "microsocks");
        let port = free_port();
        let mut cmd = Command::new(binary);
        cmd.args(["-i", "127.0.0.1", "-p", &port.to_string()]);
        if let Some((u, p)) = auth {
            cmd.args(["-u", u, "-P", p]);
        }
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start microsocks");
        wait_for_port(port, &mut child, "microsocks", Path::new("/dev/null"));
        Socks5 {
            child,
            port,
            auth: auth.map(|(u, p)| (u.to_string(), p.to_string())),
        }
    }

    /// The account setting that routes through this proxy.
    pub fn settings(&self) -> ProxySettings {
        ProxySettings {
            host: "127.0.0.1".into(),
            port: self.port,
            username: self.auth.as_ref().map(|(u, _)| u.clone()),
            password: self.auth.as_ref().map(|(_, p)| Secret::new(p.clone())),
        }
    }
}

impl Drop for Socks5 {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A TCP relay to a server that forwards everything until the server has
/// sent `cut_after` bytes, then drops both sides: a connection lost in the
/// middle of a response.
pub struct CuttingRelay {
    /// Port clients connect to.
    pub port: u16,
    /// Bytes relayed from the server so far (all connections).
    pub relayed: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl CuttingRelay {
    /// Starts a relay to `127.0.0.1:target` that cuts after `cut_after`
    /// server bytes on each connection.
    pub async fn start(target: u16, cut_after: usize) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let relayed = Arc::new(AtomicUsize::new(0));
        let counter = relayed.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let counter = counter.clone();
                tokio::spawn(async move {
                    let server =
                        tokio::net::TcpStream::connect(SocketAddr::from(([127, 0, 0, 1], target)))
                            .await
                            .unwrap();
                    relay(client, server, cut_after, counter).await;
                });
            }
        });
        CuttingRelay {
            port,
            relayed,
            task,
        }
    }
}

impl Drop for CuttingRelay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn relay(
    client: tokio::net::TcpStream,
    server: tokio::net::TcpStream,
    cut_after: usize,
    counter: Arc<AtomicUsize>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let upstream = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut cr, &mut sw).await;
    });
    let mut sent = 0usize;
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match sr.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let allowed = n.min(cut_after.saturating_sub(sent));
        if allowed > 0 && cw.write_all(&buf[..allowed]).await.is_err() {
            break;
        }
        sent += allowed;
        counter.fetch_add(allowed, Ordering::Relaxed);
        if sent >= cut_after {
            break;
        }
    }
    upstream.abort();
    // Dropping both halves closes both connections.
}

/// A realistic message of about `size` bytes with a unique Message-ID.
pub fn message(n: usize, size: usize) -> Vec<u8> {
    let head = format!(
        "From: Sender {n} <sender{n}@acme.example>\r\nTo: alice@ourco.example\r\nSubject: Message {n}\r\n\
Date: Mon, 02 Nov 2026 09:00:00 +0000\r\nMessage-ID: <msg-{n}@acme.example>\r\nMIME-Version: 1.0\r\n\
Content-Type: text/plain; charset=utf-8\r\n\r\n"
    );
    let mut raw = head.into_bytes();
    let line = b"The quick brown fox jumps over the lazy dog; a line of body text for size.\r\n";
    while raw.len() + line.len() <= size.max(raw.len() + line.len()) && raw.len() < size {
        raw.extend_from_slice(line);
    }
    // A dot-stuffing trap for POP3 and a bare '.' line in the middle.
    raw.extend_from_slice(b".leading dot line\r\n.\r\nend\r\n");
    raw
}
