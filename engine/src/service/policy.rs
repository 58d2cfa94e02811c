//! What a check's outcome does to an account: when it is checked next,
//! when it backs off, when it is disabled. Pure functions over
//! [`AccountHealth`], so every rule is tested without a server.
//!
//! - Success: state `ok`, next check after the interval, ±10 % jitter so
//!   accounts added together drift apart.
//! - A transient failure (network, busy server, protocol, plugin chain,
//!   store): back off exponentially with jitter, from
//!   [`RetryPolicy::first_backoff`] doubling to [`RetryPolicy::max_backoff`].
//!   It **never** disables the account: a brief timeout must not switch off
//!   anyone's inbox.
//! - A permanent failure (authentication, certificate/TLS): backs off the
//!   same way, and after [`RetryPolicy::disable_after`] such failures in a
//!   row disables the account, with the reason and the time kept.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::fetch::FailureClass;
use crate::oauth::OAuthError;
use crate::pipeline::PipelineError;
use crate::store::{AccountHealth, HealthState};

/// Longest error text kept for display.
const MAX_ERROR_CHARS: usize = 1000;

/// What kind of failure ended a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorClass {
    /// Credentials or mechanism refused.
    Auth,
    /// Certificate rejected, TLS hand-shake failed.
    Tls,
    /// Unreachable, too slow, silent, disconnected.
    Network,
    /// Mailbox in use, too many connections, temporary trouble.
    Busy,
    /// The server broke the protocol or refused a command.
    Protocol,
    /// The tenant's plugin chain could not be loaded.
    Plugin,
    /// The store failed (database, master key).
    Store,
    /// The OAuth2 provider no longer honours the account's authorization
    /// (revoked, expired): only signing in again helps.
    Reauthorize,
}

impl ErrorClass {
    /// Its name, as stored, shown and used as a metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Auth => "auth",
            ErrorClass::Tls => "tls",
            ErrorClass::Network => "network",
            ErrorClass::Busy => "busy",
            ErrorClass::Protocol => "protocol",
            ErrorClass::Plugin => "plugin",
            ErrorClass::Store => "store",
            ErrorClass::Reauthorize => "reauthorize",
        }
    }

    /// Only a person can fix it: retrying the same settings cannot help.
    pub fn is_permanent(self) -> bool {
        matches!(
            self,
            ErrorClass::Auth | ErrorClass::Tls | ErrorClass::Reauthorize
        )
    }

    /// Disables the account at the first occurrence: nothing but a person
    /// can fix it, and retrying would only hammer the provider.
    pub fn disables_at_once(self) -> bool {
        self == ErrorClass::Reauthorize
    }

    /// The class of a failed run.
    pub fn of(error: &PipelineError) -> ErrorClass {
        match error {
            PipelineError::Fetch(e) => match e.class() {
                FailureClass::Auth => ErrorClass::Auth,
                FailureClass::Tls => ErrorClass::Tls,
                FailureClass::Network => ErrorClass::Network,
                FailureClass::Busy => ErrorClass::Busy,
                _ => ErrorClass::Protocol,
            },
            PipelineError::Store(_) => ErrorClass::Store,
            PipelineError::Plugin(_) | PipelineError::NoPlugins(_) => ErrorClass::Plugin,
            PipelineError::Authorization(e) => match e {
                OAuthError::Revoked { .. } => ErrorClass::Reauthorize,
                OAuthError::Unreachable { .. } => ErrorClass::Network,
                OAuthError::Client { .. } | OAuthError::Mismatch(_) => ErrorClass::Auth,
                OAuthError::BadResponse { .. } => ErrorClass::Protocol,
                OAuthError::Store(_) => ErrorClass::Store,
            },
        }
    }

    fn parse(text: &str) -> Option<ErrorClass> {
        [
            ErrorClass::Auth,
            ErrorClass::Tls,
            ErrorClass::Network,
            ErrorClass::Busy,
            ErrorClass::Protocol,
            ErrorClass::Plugin,
            ErrorClass::Store,
            ErrorClass::Reauthorize,
        ]
        .into_iter()
        .find(|c| c.as_str() == text)
    }
}

/// How a check ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckOutcome {
    /// The run went through (messages that failed alone are quarantined,
    /// not failures of the account).
    Succeeded {
        /// Messages fetched and committed.
        ingested: u64,
        /// Stopped early by shutdown: due again at the next start.
        interrupted: bool,
    },
    /// The run failed.
    Failed {
        /// Why, by kind.
        class: ErrorClass,
        /// The error as a user reads it.
        message: String,
    },
}

/// Backoff and disabling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The wait after the first failure.
    pub first_backoff: Duration,
    /// The longest wait.
    pub max_backoff: Duration,
    /// Permanent failures in a row that disable an account.
    pub disable_after: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            first_backoff: Duration::from_secs(60),
            max_backoff: Duration::from_secs(3600),
            disable_after: 3,
        }
    }
}

impl RetryPolicy {
    /// The wait after `failures` failures in a row (1 = the first), before
    /// jitter.
    pub fn backoff(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(30);
        self.first_backoff
            .saturating_mul(1u32 << doublings)
            .min(self.max_backoff)
    }
}

/// Scales `base` by a factor in [0.9, 1.1) chosen by `unit` ∈ [0, 1).
fn jittered(base: Duration, unit: f64) -> Duration {
    base.mul_f64(0.9 + 0.2 * unit.clamp(0.0, 1.0))
}

/// `d` as a chrono duration (saturating).
pub(crate) fn chrono_duration(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

/// The account's health after a check that started at `started` and ended
/// at `ended` with `outcome`. `interval` is the account's check interval;
/// `unit` ∈ [0, 1) picks the jitter.
pub fn after_check(
    previous: &AccountHealth,
    outcome: &CheckOutcome,
    started: DateTime<Utc>,
    ended: DateTime<Utc>,
    interval: Duration,
    policy: &RetryPolicy,
    unit: f64,
) -> AccountHealth {
    let mut next = AccountHealth {
        last_check_at: Some(started),
        lease_owner: None,
        lease_until: None,
        check_requested_at: None,
        progress: None,
        ..previous.clone()
    };
    match outcome {
        CheckOutcome::Succeeded {
            ingested,
            interrupted,
        } => {
            next.state = HealthState::Ok;
            next.consecutive_failures = 0;
            next.retry_at = None;
            next.disabled_reason = None;
            next.disabled_at = None;
            next.last_success_at = Some(started);
            next.last_error_class = None;
            next.last_error = None;
            next.last_ingested = Some(*ingested);
            next.next_check_at = Some(if *interrupted {
                ended
            } else {
                ended + chrono_duration(jittered(interval, unit))
            });
        }
        CheckOutcome::Failed { class, message } => {
            // A run of failures counts only while they are of one kind: a
            // wrong password after two timeouts is a first strike, not a
            // third.
            let same_kind = previous
                .last_error_class
                .as_deref()
                .and_then(ErrorClass::parse)
                .is_some_and(|c| c.is_permanent() == class.is_permanent());
            next.consecutive_failures = if same_kind {
                previous.consecutive_failures.saturating_add(1)
            } else {
                1
            };
            next.last_error_class = Some(class.as_str().to_string());
            next.last_error = Some(crate::text::bounded(message, MAX_ERROR_CHARS));
            if class.disables_at_once()
                || class.is_permanent() && next.consecutive_failures >= policy.disable_after.max(1)
            {
                next.state = HealthState::Disabled;
                next.disabled_reason = Some(if class.disables_at_once() {
                    format!(
                        "re-authorize: {}",
                        crate::text::bounded(message, MAX_ERROR_CHARS)
                    )
                } else {
                    format!(
                        "{} ({} failures in a row): {}",
                        class.as_str(),
                        next.consecutive_failures,
                        crate::text::bounded(message, MAX_ERROR_CHARS)
                    )
                });
                next.disabled_at = Some(ended);
                next.retry_at = None;
                next.next_check_at = None;
            } else {
                let wait = jittered(policy.backoff(next.consecutive_failures), unit)
                    .min(policy.max_backoff);
                let at = ended + chrono_duration(wait);
                next.state = HealthState::BackingOff;
                next.retry_at = Some(at);
                next.next_check_at = Some(at);
            }
        }
    }
    next
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap()
    }

    fn fail(class: ErrorClass) -> CheckOutcome {
        CheckOutcome::Failed {
            class,
            message: format!("{} went wrong", class.as_str()),
        }
    }

    fn run(outcomes: &[CheckOutcome]) -> AccountHealth {
        let policy = RetryPolicy::default();
        let mut h = AccountHealth::default();
        for (i, o) in outcomes.iter().enumerate() {
            let at = t(i as i64 * 10_000);
            h = after_check(&h, o, at, at, Duration::from_secs(300), &policy, 0.5);
        }
        h
    }

    #[test]
    fn success_schedules_the_next_check_at_the_interval() {
        let h = run(&[CheckOutcome::Succeeded {
            ingested: 4,
            interrupted: false,
        }]);
        assert_eq!(h.state, HealthState::Ok);
        assert_eq!(h.next_check_at, Some(t(300)));
        assert_eq!(h.last_ingested, Some(4));
        let policy = RetryPolicy::default();
        let early = after_check(
            &AccountHealth::default(),
            &CheckOutcome::Succeeded {
                ingested: 0,
                interrupted: false,
            },
            t(0),
            t(0),
            Duration::from_secs(300),
            &policy,
            0.0,
        );
        assert_eq!(early.next_check_at, Some(t(270)), "jitter reaches -10 %");
    }

    #[test]
    fn transient_failures_back_off_and_never_disable() {
        let outcomes: Vec<_> = (0..40).map(|_| fail(ErrorClass::Network)).collect();
        let h = run(&outcomes);
        assert_eq!(h.state, HealthState::BackingOff);
        assert_eq!(h.consecutive_failures, 40);
        let last = t(39 * 10_000);
        assert_eq!(h.retry_at, Some(last + chrono::Duration::seconds(3600)));
        let policy = RetryPolicy::default();
        assert_eq!(policy.backoff(1), Duration::from_secs(60));
        assert_eq!(policy.backoff(2), Duration::from_secs(120));
        assert_eq!(policy.backoff(7), Duration::from_secs(3600));
        assert_eq!(policy.backoff(u32::MAX), Duration::from_secs(3600));
    }

    #[test]
    fn permanent_failures_disable_after_three_in_a_row() {
        let h = run(&[fail(ErrorClass::Auth), fail(ErrorClass::Auth)]);
        assert_eq!(h.state, HealthState::BackingOff);
        let h = run(&[
            fail(ErrorClass::Auth),
            fail(ErrorClass::Auth),
            fail(ErrorClass::Auth),
        ]);
        assert_eq!(h.state, HealthState::Disabled);
        assert!(
            h.disabled_reason
                .as_deref()
                .unwrap()
                .starts_with("auth (3 failures in a row)")
        );
        assert_eq!(h.next_check_at, None);
        // Transient failures in between restart the count.
        let h = run(&[
            fail(ErrorClass::Auth),
            fail(ErrorClass::Network),
            fail(ErrorClass::Auth),
            fail(ErrorClass::Tls),
        ]);
        assert_eq!(h.state, HealthState::BackingOff);
        assert_eq!(h.consecutive_failures, 2);
    }

    #[test]
    fn success_clears_failures_and_an_interrupted_run_is_due_again() {
        let h = run(&[
            fail(ErrorClass::Auth),
            fail(ErrorClass::Auth),
            CheckOutcome::Succeeded {
                ingested: 1,
                interrupted: true,
            },
        ]);
        assert_eq!(h.state, HealthState::Ok);
        assert_eq!(h.consecutive_failures, 0);
        assert_eq!(h.last_error, None);
        assert_eq!(h.next_check_at, Some(t(20_000)));
    }

    #[test]
    fn huge_error_text_is_bounded() {
        let h = run(&[CheckOutcome::Failed {
            class: ErrorClass::Protocol,
            message: "x".repeat(1 << 20),
        }]);
        assert!(h.last_error.unwrap().len() <= MAX_ERROR_CHARS + 64);
    }
}
