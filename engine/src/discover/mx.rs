//! The last resort for a company domain: its MX records. A domain whose
//! mail exchangers are a known provider's (`…mail.protection.outlook.com`
//! for Microsoft 365, `aspmx.l.google.com` for Google Workspace, …) is
//! hosted there, so its mailboxes are read from that provider's servers —
//! what Thunderbird does when the domain publishes nothing else.

use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::proto::rr::RData;

use super::presets::{Preset, UserName, preset_for_mx};
use super::{Attempt, Discovered, DnsError, Method, from_preset, valid_host};

/// The MX records of `domain`: (preference, exchange without the trailing
/// dot), malformed exchanges left out.
pub async fn lookup(
    resolver: &TokioResolver,
    domain: &str,
    timeout: Duration,
) -> Result<Vec<(u16, String)>, DnsError> {
    let name = format!("{domain}.");
    let answer = DnsError::of(
        tokio::time::timeout(timeout, resolver.mx_lookup(name.as_str())).await,
        timeout,
    )?;
    let records: Vec<(u16, String)> = answer
        .answers()
        .iter()
        .filter_map(|record| match &record.data {
            RData::MX(mx) => {
                let host = mx.exchange.to_ascii();
                let host = host.trim_end_matches('.').to_ascii_lowercase();
                valid_host(&host).then_some((mx.preference, host))
            }
            _ => None,
        })
        .take(64)
        .collect();
    if records.is_empty() {
        Err(DnsError::NoRecords)
    } else {
        Ok(records)
    }
}

/// The provider of the most preferred exchange the table knows, with that
/// exchange.
pub fn provider(records: &[(u16, String)]) -> Option<(&'static Preset, String)> {
    let mut records: Vec<&(u16, String)> = records.iter().collect();
    records.sort_by_key(|(preference, _)| *preference);
    records
        .into_iter()
        .find_map(|(_, host)| preset_for_mx(host).map(|p| (p, host.clone())))
}

/// What discovery answers for a domain hosted by `preset`. The user name
/// is the address, unless the provider's is something else (then it is
/// left open: on a company domain it is not the local part).
pub fn discovered(
    preset: &Preset,
    exchange: &str,
    email: String,
    domain: String,
    tried: Vec<Attempt>,
) -> Discovered {
    let mut d = from_preset(preset, email, domain, tried);
    d.method = Method::Mx;
    d.source = format!("MX {exchange} (preset {})", preset.id);
    if preset.username != UserName::Address {
        for server in &mut d.servers {
            server.username = None;
        }
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_most_preferred_known_exchange_names_the_provider() {
        let records = vec![
            (20, "backup.mx.example".to_owned()),
            (10, "contoso-example.mail.protection.outlook.com".to_owned()),
            (5, "filter.example.net".to_owned()),
            (30, "alt1.aspmx.l.google.com".to_owned()),
        ];
        let (preset, host) = provider(&records).unwrap();
        assert_eq!(preset.id, "microsoft");
        assert_eq!(host, "contoso-example.mail.protection.outlook.com");
        assert!(provider(&[(0, "mx.example.com".into())]).is_none());
    }

    #[test]
    fn a_hosted_domain_gets_the_providers_servers() {
        let icloud = crate::discover::preset("icloud").unwrap();
        let d = discovered(
            icloud,
            "mx01.mail.icloud.com",
            "ann@family.example".into(),
            "family.example".into(),
            vec![],
        );
        assert_eq!(d.method, Method::Mx);
        assert_eq!(d.servers[0].host, "imap.mail.me.com");
        assert_eq!(
            d.servers[0].username, None,
            "not the custom address's local part"
        );
        let google = crate::discover::preset("gmail").unwrap();
        let d = discovered(
            google,
            "aspmx.l.google.com",
            "ann@acme.example".into(),
            "acme.example".into(),
            vec![],
        );
        assert_eq!(d.servers[0].username.as_deref(), Some("ann@acme.example"));
        assert_eq!(d.source, "MX aspmx.l.google.com (preset gmail)");
    }
}
