//! The bundled provider table: the big mailbox providers' incoming servers
//! as they document them, so that their users never wait for a network
//! look-up and never depend on DNS or autoconfig files being right.
//!
//! Each entry names the e-mail domains it serves, its IMAP server, its POP3
//! server where it offers one, the user name it expects and the OAuth2
//! provider it signs in with (recorded now; OAuth2 sign-in comes later).
//! A domain belongs to one entry at most (a unit test checks it).

use serde::Serialize;

use super::{Authentication, ServerSettings};
use crate::domain::{Protocol, Security};

/// The OAuth2 provider an account signs in with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum OAuthProvider {
    /// Google (Gmail, Google Workspace).
    Google,
    /// Microsoft (Outlook.com, Microsoft 365).
    Microsoft,
}

impl OAuthProvider {
    /// The provider's name in words.
    pub fn as_str(self) -> &'static str {
        match self {
            OAuthProvider::Google => "google",
            OAuthProvider::Microsoft => "microsoft",
        }
    }

    /// The provider an OAuth2 issuer (autoconfig's `<oAuth2><issuer>`) or
    /// a mail host belongs to, when it is one Intake knows.
    pub fn for_host(host: &str) -> Option<OAuthProvider> {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        let under = |domain: &str| host == domain || host.ends_with(&format!(".{domain}"));
        if under("google.com") || under("gmail.com") || under("googlemail.com") {
            Some(OAuthProvider::Google)
        } else if under("microsoftonline.com")
            || under("office365.com")
            || under("outlook.com")
            || under("microsoft.com")
        {
            Some(OAuthProvider::Microsoft)
        } else {
            None
        }
    }
}

/// The user name a provider expects, in terms of the address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserName {
    /// The whole address (`ann@example.com`).
    Address,
    /// The part before the `@` (`ann`).
    LocalPart,
}

impl UserName {
    /// The user name for `email` (`local@domain`).
    pub fn for_address(self, email: &str) -> String {
        match self {
            UserName::Address => email.to_owned(),
            UserName::LocalPart => email
                .rsplit_once('@')
                .map_or(email, |(local, _)| local)
                .to_owned(),
        }
    }
}

/// One server of a preset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Endpoint {
    /// Host name (or, for a local bridge, an address).
    pub host: &'static str,
    /// Port.
    pub port: u16,
    /// Connection security.
    pub security: Security,
}

/// A provider as the bundled table knows it.
#[derive(Debug, Clone, Copy)]
pub struct Preset {
    /// Stable id (`gmail`, `microsoft`, …), what `--provider` takes.
    pub id: &'static str,
    /// The name people know it by.
    pub name: &'static str,
    /// The e-mail domains it serves (lower case).
    pub domains: &'static [&'static str],
    /// The domains its mail exchangers are under: a company domain whose
    /// MX records point there is hosted by this provider (Google
    /// Workspace, Microsoft 365, …).
    pub mx: &'static [&'static str],
    /// Its IMAP server.
    pub imap: Option<Endpoint>,
    /// Its POP3 server, where it offers POP3.
    pub pop3: Option<Endpoint>,
    /// The user name it expects.
    pub username: UserName,
    /// The OAuth2 provider it signs in with, if any.
    pub oauth2: Option<OAuthProvider>,
    /// Whether its server presents a self-signed certificate (a local
    /// bridge), which the account must be given with `--ca-file`.
    pub self_signed_certificate: bool,
    /// What a user needs to know to sign in.
    pub notes: &'static [&'static str],
}

impl Preset {
    /// Its servers, IMAP first, with the user name for `email` when given.
    pub fn servers(&self, email: Option<&str>) -> Vec<ServerSettings> {
        let authentication = match self.oauth2 {
            Some(_) => vec![Authentication::Password, Authentication::OAuth2],
            None => vec![Authentication::Password],
        };
        [(Protocol::Imap, self.imap), (Protocol::Pop3, self.pop3)]
            .into_iter()
            .filter_map(|(protocol, endpoint)| {
                endpoint.map(|e| ServerSettings {
                    protocol,
                    host: e.host.to_owned(),
                    port: e.port,
                    security: e.security,
                    username: email.map(|a| self.username.for_address(a)),
                    authentication: authentication.clone(),
                })
            })
            .collect()
    }

    /// Whether it serves `host` (one of its servers is that host).
    pub fn serves_host(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.');
        [self.imap, self.pop3]
            .into_iter()
            .flatten()
            .any(|e| e.host.eq_ignore_ascii_case(host))
    }
}

const fn tls(host: &'static str, port: u16) -> Option<Endpoint> {
    Some(Endpoint {
        host,
        port,
        security: Security::Tls,
    })
}

const APP_PASSWORD: &str = "with a password, use an app password (made in the account's \
                            security settings, with two-step verification on), not the \
                            account's own password";

/// The table. Values are from each provider's own help pages.
pub static PRESETS: &[Preset] = &[
    Preset {
        id: "gmail",
        name: "Gmail",
        domains: &["gmail.com", "googlemail.com"],
        mx: &["google.com", "googlemail.com"],
        imap: tls("imap.gmail.com", 993),
        pop3: tls("pop.gmail.com", 995),
        username: UserName::Address,
        oauth2: Some(OAuthProvider::Google),
        self_signed_certificate: false,
        notes: &[
            "Google signs in with OAuth2; until Intake speaks it, use an app password \
             (two-step verification on)",
        ],
    },
    Preset {
        id: "microsoft",
        name: "Outlook.com / Microsoft 365",
        domains: &[
            "outlook.com",
            "hotmail.com",
            "live.com",
            "msn.com",
            "passport.com",
            "outlook.de",
            "outlook.fr",
            "outlook.es",
            "outlook.it",
            "hotmail.co.uk",
            "hotmail.de",
            "hotmail.fr",
            "hotmail.it",
            "hotmail.es",
            "live.co.uk",
            "live.de",
            "live.fr",
            "live.nl",
        ],
        mx: &["mail.protection.outlook.com"],
        imap: tls("outlook.office365.com", 993),
        pop3: tls("outlook.office365.com", 995),
        username: UserName::Address,
        oauth2: Some(OAuthProvider::Microsoft),
        self_signed_certificate: false,
        notes: &[
            "Microsoft has turned password sign-in off for IMAP and POP3: these accounts need \
             OAuth2",
            "POP3 must be switched on in Outlook's settings (Mail, Forwarding and IMAP)",
        ],
    },
    Preset {
        id: "yahoo",
        name: "Yahoo Mail",
        domains: &[
            "yahoo.com",
            "ymail.com",
            "rocketmail.com",
            "yahoo.co.uk",
            "yahoo.de",
            "yahoo.fr",
            "yahoo.es",
            "yahoo.it",
            "yahoo.ca",
            "yahoo.com.au",
            "yahoo.co.jp",
        ],
        mx: &[],
        imap: tls("imap.mail.yahoo.com", 993),
        pop3: tls("pop.mail.yahoo.com", 995),
        username: UserName::Address,
        oauth2: None,
        self_signed_certificate: false,
        notes: &[APP_PASSWORD],
    },
    Preset {
        id: "icloud",
        name: "iCloud Mail",
        domains: &["icloud.com", "me.com", "mac.com"],
        mx: &["mail.icloud.com"],
        imap: tls("imap.mail.me.com", 993),
        pop3: None,
        username: UserName::LocalPart,
        oauth2: None,
        self_signed_certificate: false,
        notes: &[
            "iCloud needs an app-specific password (appleid.apple.com); the user name is the \
             part of the address before the @ (if that fails, the whole address)",
            "iCloud offers no POP3",
        ],
    },
    Preset {
        id: "fastmail",
        name: "Fastmail",
        domains: &[
            "fastmail.com",
            "fastmail.fm",
            "fastmail.net",
            "fastmail.org",
        ],
        mx: &["messagingengine.com"],
        imap: tls("imap.fastmail.com", 993),
        pop3: tls("pop.fastmail.com", 995),
        username: UserName::Address,
        oauth2: None,
        self_signed_certificate: false,
        notes: &["Fastmail needs an app password (Settings → Privacy & Security)"],
    },
    Preset {
        id: "zoho",
        name: "Zoho Mail",
        domains: &["zoho.com", "zohomail.com"],
        mx: &["zoho.com"],
        imap: tls("imap.zoho.com", 993),
        pop3: tls("pop.zoho.com", 995),
        username: UserName::Address,
        oauth2: None,
        self_signed_certificate: false,
        notes: &[
            "IMAP or POP access must be switched on in Zoho Mail's settings; with two-factor \
             authentication, use an application-specific password",
        ],
    },
    Preset {
        id: "zoho-eu",
        name: "Zoho Mail (EU)",
        domains: &["zoho.eu", "zohomail.eu"],
        mx: &["zoho.eu"],
        imap: tls("imap.zoho.eu", 993),
        pop3: tls("pop.zoho.eu", 995),
        username: UserName::Address,
        oauth2: None,
        self_signed_certificate: false,
        notes: &["IMAP or POP access must be switched on in Zoho Mail's settings"],
    },
    Preset {
        id: "gmx",
        name: "GMX",
        domains: &["gmx.net", "gmx.de", "gmx.at", "gmx.ch"],
        mx: &[],
        imap: tls("imap.gmx.net", 993),
        pop3: tls("pop.gmx.net", 995),
        username: UserName::Address,
        oauth2: None,
        self_signed_certificate: false,
        notes: &["IMAP and POP3 must be switched on in GMX's settings (POP3 & IMAP Abruf)"],
    },
    Preset {
        id: "gmx-com",
        name: "GMX (international)",
        domains: &["gmx.com", "gmx.us", "gmx.co.uk", "gmx.fr", "gmx.es"],
        mx: &[],
        imap: tls("imap.gmx.com", 993),
        pop3: tls("pop.gmx.com", 995),
        username: UserName::Address,
        oauth2: None,
        self_signed_certificate: false,
        notes: &["IMAP and POP3 must be switched on in GMX's settings"],
    },
    Preset {
        id: "aol",
        name: "AOL Mail",
        domains: &["aol.com", "aim.com"],
        mx: &[],
        imap: tls("imap.aol.com", 993),
        pop3: tls("pop.aol.com", 995),
        username: UserName::Address,
        oauth2: None,
        self_signed_certificate: false,
        notes: &[APP_PASSWORD],
    },
    Preset {
        id: "yandex",
        name: "Yandex Mail",
        domains: &[
            "yandex.ru",
            "yandex.com",
            "ya.ru",
            "yandex.by",
            "yandex.kz",
            "yandex.ua",
            "narod.ru",
        ],
        mx: &["yandex.net", "yandex.ru"],
        imap: tls("imap.yandex.com", 993),
        pop3: tls("pop.yandex.com", 995),
        username: UserName::Address,
        oauth2: None,
        self_signed_certificate: false,
        notes: &[
            "mail clients must be allowed in Yandex Mail's settings, and sign in with an app \
             password",
        ],
    },
    Preset {
        id: "proton-bridge",
        name: "Proton Mail (through Proton Mail Bridge)",
        domains: &["proton.me", "protonmail.com", "protonmail.ch", "pm.me"],
        mx: &["protonmail.ch"],
        imap: Some(Endpoint {
            host: "127.0.0.1",
            port: 1143,
            security: Security::Starttls,
        }),
        pop3: None,
        username: UserName::Address,
        oauth2: None,
        self_signed_certificate: true,
        notes: &[
            "Proton Mail is reached through Proton Mail Bridge running on the engine's machine; \
             sign in with the user name and password Bridge shows, not the Proton account's",
            "Bridge presents a self-signed certificate: export it from Bridge (Settings → \
             Export TLS certificates) and give it with --ca-file",
            "Bridge offers no POP3",
        ],
    },
];

/// The preset with this id.
pub fn preset(id: &str) -> Option<&'static Preset> {
    PRESETS
        .iter()
        .find(|p| p.id.eq_ignore_ascii_case(id.trim()))
}

/// The preset serving this e-mail domain (lower case, no trailing dot).
pub fn preset_for_domain(domain: &str) -> Option<&'static Preset> {
    PRESETS
        .iter()
        .find(|p| p.domains.iter().any(|d| d.eq_ignore_ascii_case(domain)))
}

/// The preset whose mail exchangers are under a domain of its `mx` list
/// (`host` is an MX record's exchange, without the trailing dot).
pub fn preset_for_mx(host: &str) -> Option<&'static Preset> {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    PRESETS.iter().find(|p| {
        p.mx.iter()
            .any(|d| host == *d || host.ends_with(&format!(".{d}")))
    })
}

/// The preset whose servers include `host`: a custom domain hosted by a
/// provider the table knows.
pub fn preset_for_host(host: &str) -> Option<&'static Preset> {
    PRESETS.iter().find(|p| p.serves_host(host))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_covers_the_providers_asked_for() {
        for id in [
            "gmail",
            "microsoft",
            "yahoo",
            "icloud",
            "fastmail",
            "zoho",
            "gmx",
            "aol",
            "yandex",
            "proton-bridge",
        ] {
            assert!(preset(id).is_some(), "{id}");
        }
        let gmail = preset_for_domain("gmail.com").unwrap();
        assert_eq!(
            gmail.imap,
            tls("imap.gmail.com", 993),
            "Gmail: imap.gmail.com, SSL, 993"
        );
        assert_eq!(gmail.pop3, tls("pop.gmail.com", 995));
        assert_eq!(gmail.oauth2, Some(OAuthProvider::Google));
        let ms = preset_for_domain("hotmail.com").unwrap();
        assert_eq!(ms.id, "microsoft");
        assert_eq!(ms.imap.unwrap().host, "outlook.office365.com");
        assert_eq!(ms.pop3.unwrap().port, 995);
        assert_eq!(ms.oauth2, Some(OAuthProvider::Microsoft));
        let proton = preset("proton-bridge").unwrap();
        assert_eq!(
            proton.imap,
            Some(Endpoint {
                host: "127.0.0.1",
                port: 1143,
                security: Security::Starttls
            })
        );
        assert!(proton.pop3.is_none() && proton.self_signed_certificate);
        assert!(preset("icloud").unwrap().pop3.is_none());
    }

    #[test]
    fn every_entry_is_well_formed_and_a_domain_has_one_entry() {
        let mut seen = std::collections::HashMap::new();
        for p in PRESETS {
            assert!(p.imap.is_some(), "{}: every provider offers IMAP", p.id);
            assert!(!p.domains.is_empty(), "{}", p.id);
            for d in p.domains {
                assert_eq!(*d, d.to_ascii_lowercase(), "{}", p.id);
                if let Some(other) = seen.insert(*d, p.id) {
                    panic!("{d} is in {other} and {}", p.id);
                }
            }
            for e in [p.imap, p.pop3].into_iter().flatten() {
                assert!(e.port > 0 && !e.host.is_empty(), "{}", p.id);
            }
        }
        let ids: std::collections::HashSet<_> = PRESETS.iter().map(|p| p.id).collect();
        assert_eq!(ids.len(), PRESETS.len(), "ids are unique");
    }

    #[test]
    fn user_names_and_hosts() {
        let icloud = preset("icloud").unwrap();
        let servers = icloud.servers(Some("emily@icloud.com"));
        assert_eq!(servers.len(), 1);
        assert_eq!(servers[0].username.as_deref(), Some("emily"));
        let gmail = preset("GMAIL").unwrap();
        assert_eq!(gmail.servers(None)[0].protocol, Protocol::Imap);
        assert_eq!(gmail.servers(None)[1].protocol, Protocol::Pop3);
        assert_eq!(preset_for_host("imap.gmail.com.").unwrap().id, "gmail");
        assert_eq!(
            OAuthProvider::for_host("login.microsoftonline.com"),
            Some(OAuthProvider::Microsoft)
        );
        assert_eq!(
            OAuthProvider::for_host("accounts.google.com"),
            Some(OAuthProvider::Google)
        );
        assert_eq!(OAuthProvider::for_host("evilgoogle.com"), None);
        assert_eq!(
            preset_for_mx("contoso-com.mail.protection.outlook.com.")
                .unwrap()
                .id,
            "microsoft"
        );
        assert_eq!(preset_for_mx("ASPMX.L.GOOGLE.COM").unwrap().id, "gmail");
        assert_eq!(preset_for_mx("mx01.mail.icloud.com").unwrap().id, "icloud");
        assert!(preset_for_mx("mail.evil-google.com").is_none());
        assert!(preset_for_mx("outlook.com.evil.example").is_none());
    }
}
