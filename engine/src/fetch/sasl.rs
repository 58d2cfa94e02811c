//! SASL messages both protocols send: PLAIN (RFC 4616) and the two OAuth2
//! bearer-token mechanisms, XOAUTH2 (Google's and Microsoft's) and
//! OAUTHBEARER (RFC 7628). Raw bytes here; IMAP and POP3 each frame and
//! base64-encode them their own way.
//!
//! A bearer mechanism that fails gets a challenge carrying the server's
//! error (JSON) instead of a plain `NO`/`-ERR`; the client must answer it
//! ([`bearer_failure_reply`]) before the server says no, so the refusal
//! reads as an authentication failure, not a broken exchange.

use crate::domain::{AccountSettings, Auth};

/// Why credentials cannot be put in a SASL message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the {0} holds a character SASL cannot carry")]
pub struct Unsendable(pub &'static str);

fn clean(value: &str, what: &'static str, forbidden: &[char]) -> Result<(), Unsendable> {
    if value.chars().any(|c| forbidden.contains(&c)) {
        Err(Unsendable(what))
    } else {
        Ok(())
    }
}

/// PLAIN: `\0user\0password`.
pub fn plain(user: &str, password: &str) -> Result<Vec<u8>, Unsendable> {
    clean(user, "user name", &['\0'])?;
    clean(password, "password", &['\0'])?;
    Ok(format!("\0{user}\0{password}").into_bytes())
}

/// XOAUTH2: `user=…^Aauth=Bearer …^A^A`.
pub fn xoauth2(user: &str, token: &str) -> Result<Vec<u8>, Unsendable> {
    clean(user, "user name", &['\x01'])?;
    clean(token, "access token", &['\x01'])?;
    Ok(format!("user={user}\x01auth=Bearer {token}\x01\x01").into_bytes())
}

/// OAUTHBEARER (RFC 7628 §3.1): a GS2 header naming the user, then
/// host, port and the bearer token.
pub fn oauthbearer(user: &str, host: &str, port: u16, token: &str) -> Result<Vec<u8>, Unsendable> {
    clean(user, "user name", &['\x01', ',', '='])?;
    clean(host, "host name", &['\x01'])?;
    clean(token, "access token", &['\x01'])?;
    Ok(
        format!("n,a={user},\x01host={host}\x01port={port}\x01auth=Bearer {token}\x01\x01")
            .into_bytes(),
    )
}

/// The mechanism name and first message for an account's [`Auth`]
/// (`None` for `login`, which is no SASL mechanism). The password field
/// holds the access token for the bearer mechanisms.
pub fn initial(settings: &AccountSettings) -> Result<Option<(&'static str, Vec<u8>)>, Unsendable> {
    let user = settings.username.as_str();
    let secret = settings.password.expose();
    Ok(match settings.auth {
        Auth::Login => None,
        Auth::Plain => Some(("PLAIN", plain(user, secret)?)),
        Auth::Xoauth2 => Some(("XOAUTH2", xoauth2(user, secret)?)),
        Auth::Oauthbearer => Some((
            "OAUTHBEARER",
            oauthbearer(user, &settings.host, settings.effective_port(), secret)?,
        )),
    })
}

/// What answers a challenge after the first message. For the bearer
/// mechanisms a challenge is the server's error report: XOAUTH2 wants an
/// empty reply, OAUTHBEARER a single `^A` (RFC 7628 §3.2.3); the server
/// then refuses. `None`: the mechanism has no further message (cancel).
pub fn bearer_failure_reply(auth: Auth) -> Option<&'static [u8]> {
    match auth {
        Auth::Xoauth2 => Some(b""),
        Auth::Oauthbearer => Some(b"\x01"),
        Auth::Login | Auth::Plain => None,
    }
}

/// The server's error report in a bearer mechanism's challenge, for the
/// message: its `status` and `schemes` if it is the usual JSON, else
/// nothing (the server's final refusal says the rest).
pub fn bearer_error(challenge: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(challenge).ok()?;
    let status = value.get("status").and_then(|s| s.as_str()).unwrap_or("?");
    Some(format!(
        "the server rejected the access token (status {status})"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_follow_their_rfcs() {
        assert_eq!(plain("alice", "pw").unwrap(), b"\0alice\0pw");
        assert_eq!(
            xoauth2("a@b.example", "ya29.x").unwrap(),
            b"user=a@b.example\x01auth=Bearer ya29.x\x01\x01"
        );
        assert_eq!(
            oauthbearer("a@b.example", "imap.example", 993, "t").unwrap(),
            b"n,a=a@b.example,\x01host=imap.example\x01port=993\x01auth=Bearer t\x01\x01"
        );
    }

    #[test]
    fn separators_cannot_be_smuggled_in() {
        assert!(plain("a\0b", "p").is_err());
        assert!(xoauth2("a", "t\x01auth=x").is_err());
        assert!(oauthbearer("a,b", "h", 1, "t").is_err());
        assert!(oauthbearer("a=b", "h", 1, "t").is_err());
    }

    #[test]
    fn a_failure_challenge_is_answered_and_read() {
        assert_eq!(bearer_failure_reply(Auth::Xoauth2), Some(&b""[..]));
        assert_eq!(bearer_failure_reply(Auth::Oauthbearer), Some(&b"\x01"[..]));
        assert_eq!(bearer_failure_reply(Auth::Plain), None);
        let report = br#"{"status":"401","schemes":"bearer","scope":"https://mail.google.com/"}"#;
        assert_eq!(
            bearer_error(report).unwrap(),
            "the server rejected the access token (status 401)"
        );
        assert_eq!(bearer_error(b"garbage"), None);
    }
}
