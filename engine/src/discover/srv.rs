//! RFC 6186 SRV records: `_imaps._tcp`, `_imap._tcp`, `_pop3s._tcp` and
//! `_pop3._tcp` on the mail domain, each service's record chosen the RFC
//! 2782 way (lowest priority, then by weight), a lone `.` target meaning
//! "not offered here".
//!
//! The choice ([`choose`]) and the ordering of the services found
//! ([`order`]) are pure functions; [`lookup`] asks the resolver.

use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::proto::rr::RData;

use super::{Authentication, DnsError, ServerSettings, valid_host};
use crate::domain::{Protocol, Security};

/// One of the four services RFC 6186 names for mail access.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailService {
    /// `_imaps._tcp`: IMAP with implicit TLS.
    Imaps,
    /// `_imap._tcp`: IMAP, upgraded with STARTTLS.
    Imap,
    /// `_pop3s._tcp`: POP3 with implicit TLS.
    Pop3s,
    /// `_pop3._tcp`: POP3, upgraded with STLS.
    Pop3,
}

impl MailService {
    /// All four, in the order they are asked.
    pub const ALL: [MailService; 4] = [
        MailService::Imaps,
        MailService::Imap,
        MailService::Pop3s,
        MailService::Pop3,
    ];

    /// The owner name's prefix (`_imaps._tcp`).
    pub fn label(self) -> &'static str {
        match self {
            MailService::Imaps => "_imaps._tcp",
            MailService::Imap => "_imap._tcp",
            MailService::Pop3s => "_pop3s._tcp",
            MailService::Pop3 => "_pop3._tcp",
        }
    }

    /// The protocol it speaks.
    pub fn protocol(self) -> Protocol {
        match self {
            MailService::Imaps | MailService::Imap => Protocol::Imap,
            MailService::Pop3s | MailService::Pop3 => Protocol::Pop3,
        }
    }

    /// Its security: implicit TLS, or STARTTLS (RFC 6186 §3.1: the plain
    /// services are to be upgraded; Intake never uses them in the clear).
    pub fn security(self) -> Security {
        match self {
            MailService::Imaps | MailService::Pop3s => Security::Tls,
            MailService::Imap | MailService::Pop3 => Security::Starttls,
        }
    }
}

/// An SRV record's data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SrvRecord {
    /// Lower is tried first.
    pub priority: u16,
    /// Among equal priorities, the share of choices.
    pub weight: u16,
    /// Port.
    pub port: u16,
    /// Target host, without the trailing dot; `.` is `""`.
    pub target: String,
}

/// What a service's records say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Choice {
    /// The record to use.
    Use(SrvRecord),
    /// A lone `.` target: the domain says it does not offer the service.
    NotOffered,
    /// No usable record (none at all, or only malformed ones).
    Nothing,
}

/// Picks one record the RFC 2782 way: the lowest priority; among those,
/// a weighted random choice (`random` in [0, 1)). Records with port 0, a
/// `.` target beside others, or a target that is no host name are skipped.
pub fn choose(records: &[SrvRecord], random: f64) -> Choice {
    if let [only] = records
        && only.target.is_empty()
    {
        return Choice::NotOffered;
    }
    let usable: Vec<&SrvRecord> = records
        .iter()
        .filter(|r| r.port != 0 && valid_host(&r.target))
        .collect();
    let Some(best) = usable.iter().map(|r| r.priority).min() else {
        return Choice::Nothing;
    };
    // RFC 2782: weight-0 records first, then a running sum; the first
    // record whose running sum reaches a random number in [0, sum] wins.
    let mut group: Vec<&SrvRecord> = usable.into_iter().filter(|r| r.priority == best).collect();
    group.sort_by_key(|r| r.weight != 0);
    let sum: u32 = group.iter().map(|r| u32::from(r.weight)).sum();
    let pick = ((random.clamp(0.0, 1.0) * f64::from(sum + 1)) as u32).min(sum);
    let mut running = 0u32;
    for r in &group {
        running += u32::from(r.weight);
        if running >= pick {
            return Choice::Use((*r).clone());
        }
    }
    Choice::Use(group[group.len() - 1].clone())
}

/// The services found, best first: by the records' priority across
/// services (RFC 6186 §3.4 lets the domain state its preference so), then
/// IMAP before POP3, then implicit TLS before STARTTLS (RFC 8314).
pub fn order(found: Vec<(MailService, SrvRecord)>) -> Vec<ServerSettings> {
    let mut found = found;
    found.sort_by_key(|(service, record)| {
        (
            record.priority,
            service.protocol() != Protocol::Imap,
            service.security() != Security::Tls,
        )
    });
    found
        .into_iter()
        .map(|(service, record)| ServerSettings {
            protocol: service.protocol(),
            host: record.target,
            port: record.port,
            security: service.security(),
            username: None,
            authentication: vec![Authentication::Password],
        })
        .collect()
}

/// The SRV records of `service` on `domain` (an absolute name is asked,
/// so no search domain is appended).
pub async fn lookup(
    resolver: &TokioResolver,
    service: MailService,
    domain: &str,
    timeout: Duration,
) -> Result<Vec<SrvRecord>, DnsError> {
    let name = format!("{}.{domain}.", service.label());
    let answer = DnsError::of(
        tokio::time::timeout(timeout, resolver.srv_lookup(name.as_str())).await,
        timeout,
    )?;
    let records: Vec<SrvRecord> = answer
        .answers()
        .iter()
        .filter_map(|record| match &record.data {
            RData::SRV(srv) => {
                let target = srv.target.to_ascii();
                Some(SrvRecord {
                    priority: srv.priority,
                    weight: srv.weight,
                    port: srv.port,
                    target: target.trim_end_matches('.').to_ascii_lowercase(),
                })
            }
            _ => None,
        })
        // A hostile server could answer with thousands.
        .take(64)
        .collect();
    if records.is_empty() {
        Err(DnsError::NoRecords)
    } else {
        Ok(records)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(priority: u16, weight: u16, port: u16, target: &str) -> SrvRecord {
        SrvRecord {
            priority,
            weight,
            port,
            target: target.into(),
        }
    }

    #[test]
    fn the_lowest_priority_wins() {
        let records = [
            rec(20, 100, 993, "backup.example.com"),
            rec(10, 0, 993, "imap.example.com"),
        ];
        for random in [0.0, 0.5, 0.999] {
            assert_eq!(
                choose(&records, random),
                Choice::Use(rec(10, 0, 993, "imap.example.com"))
            );
        }
    }

    #[test]
    fn weights_share_the_choice_among_equal_priorities() {
        let records = [
            rec(10, 1, 993, "small.example.com"),
            rec(10, 0, 993, "zero.example.com"),
            rec(10, 98, 993, "big.example.com"),
        ];
        let pick = |random| match choose(&records, random) {
            Choice::Use(r) => r.target,
            other => panic!("{other:?}"),
        };
        // Sum 99, numbers 0..=99: 0 → the weight-0 record (sorted first),
        // 1 → small, 2..=99 → big.
        assert_eq!(pick(0.0), "zero.example.com");
        assert_eq!(pick(1.0 / 100.0 + 1e-9), "small.example.com");
        assert_eq!(pick(0.5), "big.example.com");
        assert_eq!(pick(0.9999), "big.example.com");
        let mut counts = std::collections::HashMap::new();
        for i in 0..1000 {
            *counts.entry(pick(f64::from(i) / 1000.0)).or_insert(0) += 1;
        }
        assert!(counts["big.example.com"] > 950, "{counts:?}");
    }

    #[test]
    fn a_lone_dot_means_not_offered() {
        assert_eq!(choose(&[rec(0, 0, 0, "")], 0.3), Choice::NotOffered);
        // Beside real records, a dot is just skipped.
        assert_eq!(
            choose(&[rec(0, 0, 0, ""), rec(5, 0, 995, "pop.example.com")], 0.3),
            Choice::Use(rec(5, 0, 995, "pop.example.com"))
        );
        assert_eq!(choose(&[], 0.3), Choice::Nothing);
    }

    #[test]
    fn malformed_records_are_skipped() {
        let records = [
            rec(0, 0, 0, "noport.example.com"),
            rec(0, 0, 993, "bad host\u{1b}[31m.example.com"),
            rec(0, 0, 993, "-leading-hyphen.example.com"),
        ];
        assert_eq!(choose(&records, 0.1), Choice::Nothing);
    }

    #[test]
    fn services_are_ordered_by_priority_then_imap_then_tls() {
        let servers = order(vec![
            (MailService::Pop3s, rec(0, 0, 995, "pop.example.com")),
            (MailService::Imap, rec(0, 0, 143, "imap.example.com")),
            (MailService::Imaps, rec(0, 0, 993, "imap.example.com")),
        ]);
        let summary: Vec<_> = servers
            .iter()
            .map(|s| (s.protocol, s.port, s.security))
            .collect();
        assert_eq!(
            summary,
            [
                (Protocol::Imap, 993, Security::Tls),
                (Protocol::Imap, 143, Security::Starttls),
                (Protocol::Pop3, 995, Security::Tls),
            ]
        );
        // A domain preferring POP3 says so with the priority.
        let servers = order(vec![
            (MailService::Imaps, rec(10, 0, 993, "imap.example.com")),
            (MailService::Pop3s, rec(1, 0, 995, "pop.example.com")),
        ]);
        assert_eq!(servers[0].protocol, Protocol::Pop3);
    }
}
