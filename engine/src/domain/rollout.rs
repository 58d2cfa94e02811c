//! A canary's rollout: which messages a binding's candidate version decides
//! instead of its active one — chosen accounts always, and a share of the
//! rest. The choice is a pure function of the message, so a message
//! fetched again after a failure, imported twice or re-decided goes the
//! same way every time, on every worker.

use serde::{Deserialize, Serialize};

/// Basis points in a whole (100 %).
pub const WHOLE: u16 = 10_000;

/// Who gets a candidate version.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rollout {
    /// Share of messages, in basis points (0 to [`WHOLE`]; 1 000 is 10 %).
    pub share_bp: u16,
    /// Accounts (by name) whose every message gets the candidate.
    pub accounts: Vec<String>,
}

/// What names a message for the rollout: its tenant and account names and
/// a key that stays with the message (its Message-ID, else the SHA-256 of
/// its bytes).
#[derive(Debug, Clone, Copy)]
pub struct RolloutKey<'a> {
    /// The tenant's name.
    pub tenant: &'a str,
    /// The account's name.
    pub account: &'a str,
    /// Message-ID, or the content hash when it has none.
    pub message: &'a str,
}

impl Rollout {
    /// Whether the message goes to the candidate of binding `binding`: its
    /// account is one of [`Self::accounts`], or its bucket (0 to 9 999, from
    /// a SHA-256 of the tenant, account, binding and message key) is under
    /// the share. The binding's name is in the hash so two canaries at 10 %
    /// each take different tenths of the mail, not the same one.
    pub fn takes(&self, binding: &str, key: &RolloutKey<'_>) -> bool {
        if self.accounts.iter().any(|a| a == key.account) {
            return true;
        }
        match self.share_bp {
            0 => false,
            share if share >= WHOLE => true,
            share => bucket(binding, key) < share,
        }
    }

    /// The share as a percentage, for people (`12.5`).
    pub fn share_percent(&self) -> f64 {
        f64::from(self.share_bp) / 100.0
    }
}

/// A message's bucket for `binding`, 0 to [`WHOLE`] − 1.
pub fn bucket(binding: &str, key: &RolloutKey<'_>) -> u16 {
    use sha2::Digest;
    let mut hash = sha2::Sha256::new();
    for part in [key.tenant, key.account, binding, key.message] {
        hash.update(part.len().to_le_bytes());
        hash.update(part.as_bytes());
    }
    let digest = hash.finalize();
    let head = u64::from_be_bytes(digest[..8].try_into().expect("8 bytes"));
    (head % u64::from(WHOLE)) as u16
}

/// A share given as a percentage (`10`, `2.5`) in basis points; refused
/// outside 0–100 or finer than 0.01.
pub fn parse_share(percent: f64) -> Result<u16, String> {
    if !percent.is_finite() || !(0.0..=100.0).contains(&percent) {
        return Err(format!("{percent}: a share is 0 to 100 (per cent)"));
    }
    let bp = percent * 100.0;
    if (bp - bp.round()).abs() > 1e-6 {
        return Err(format!("{percent}: at most two decimals (0.01 %)"));
    }
    Ok(bp.round() as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key<'a>(account: &'a str, message: &'a str) -> RolloutKey<'a> {
        RolloutKey {
            tenant: "acme",
            account,
            message,
        }
    }

    #[test]
    fn the_same_message_always_goes_the_same_way() {
        let rollout = Rollout {
            share_bp: 5_000,
            accounts: Vec::new(),
        };
        let ids: Vec<String> = (0..2_000).map(|i| format!("<{i}@x.example>")).collect();
        let first: Vec<bool> = ids
            .iter()
            .map(|id| rollout.takes("exact_match", &key("sales", id)))
            .collect();
        let again: Vec<bool> = ids
            .iter()
            .map(|id| rollout.takes("exact_match", &key("sales", id)))
            .collect();
        assert_eq!(first, again);
        let taken = first.iter().filter(|t| **t).count();
        // 2,000 fair coin flips: 1,000 ± 4.5 standard deviations.
        assert!((900..=1_100).contains(&taken), "{taken} of 2000 at 50 %");
    }

    #[test]
    fn shares_are_monotonic_and_bounded() {
        let ids: Vec<String> = (0..1_000).map(|i| format!("<{i}@x>")).collect();
        let at = |share_bp| {
            let rollout = Rollout {
                share_bp,
                accounts: Vec::new(),
            };
            ids.iter()
                .filter(|id| rollout.takes("b", &key("a", id)))
                .cloned()
                .collect::<Vec<_>>()
        };
        assert!(at(0).is_empty());
        assert_eq!(at(WHOLE).len(), ids.len());
        // Raising the share only adds messages: none moves back.
        let (ten, twenty) = (at(1_000), at(2_000));
        assert!(ten.iter().all(|id| twenty.contains(id)));
        assert!(twenty.len() > ten.len());
    }

    #[test]
    fn chosen_accounts_always_get_the_candidate_and_bindings_split_apart() {
        let rollout = Rollout {
            share_bp: 0,
            accounts: vec!["vip".into()],
        };
        assert!(rollout.takes("b", &key("vip", "<1@x>")));
        assert!(!rollout.takes("b", &key("sales", "<1@x>")));
        let differ = (0..200)
            .map(|i| format!("<{i}@x>"))
            .filter(|id| bucket("one", &key("a", id)) != bucket("two", &key("a", id)))
            .count();
        assert!(differ > 190, "{differ}");
    }

    #[test]
    fn shares_parse_as_percentages() {
        assert_eq!(parse_share(10.0), Ok(1_000));
        assert_eq!(parse_share(2.5), Ok(250));
        assert_eq!(parse_share(0.01), Ok(1));
        assert_eq!(parse_share(100.0), Ok(WHOLE));
        assert!(parse_share(100.5).is_err());
        assert!(parse_share(-1.0).is_err());
        assert!(parse_share(0.001).is_err());
        assert!(parse_share(f64::NAN).is_err());
    }
}
