//! auto-reply-guard: ends the chain for machine-generated mail so it is never
//! linked to a contact or turned into a lead: RFC 3834 `Auto-Submitted`,
//! `Precedence: bulk|junk|list`, `X-Autoreply` and kin, `List-Id`, delivery
//! status notifications, and `MAILER-DAEMON` / no-reply senders.
//!
//! Put it first in the chain. Configuration (all optional):
//! ```json
//! { "action": "discard",
//!   "mailing_lists": true,
//!   "robot_senders": true,
//!   "server_action": "mark-seen" }
//! ```
//! `action` is `discard` (default) or `quarantine`; `mailing_lists` and
//! `robot_senders` turn those two checks off when false; `server_action` is
//! `leave`, `mark-seen`, `delete` or `move:FOLDER`.

use intake_plugin_sdk::{
    AutoReply, Directory, Error, Matcher, Message, Plugin, ServerAction, Verdict,
};
use serde::Deserialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum Action {
    Discard,
    Quarantine,
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Config {
    action: Action,
    mailing_lists: bool,
    robot_senders: bool,
    server_action: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            action: Action::Discard,
            mailing_lists: true,
            robot_senders: true,
            server_action: None,
        }
    }
}

struct Guard {
    config: Config,
    server_action: Option<ServerAction>,
}

impl Plugin for Guard {
    type Config = Config;

    fn new(config: Config) -> Result<Self, Error> {
        let server_action = config
            .server_action
            .as_deref()
            .map(str::parse)
            .transpose()?;
        Ok(Guard {
            config,
            server_action,
        })
    }
}

impl Matcher for Guard {
    fn match_message(
        &self,
        message: &Message,
        _directory: &dyn Directory,
    ) -> Result<Verdict, Error> {
        let reason = match message.auto_reply_reason() {
            None => return Ok(Verdict::no_opinion()),
            Some(AutoReply::MailingList(_)) if !self.config.mailing_lists => {
                return Ok(Verdict::no_opinion());
            }
            Some(AutoReply::RobotSender(_)) if !self.config.robot_senders => {
                return Ok(Verdict::no_opinion());
            }
            Some(reason) => format!("automatic message: {reason}"),
        };
        let verdict = match self.config.action {
            Action::Discard => Verdict::discard(reason),
            Action::Quarantine => Verdict::quarantine(reason),
        };
        Ok(match &self.server_action {
            Some(action) => verdict.with_server_action(action.clone()),
            None => verdict,
        })
    }
}

intake_plugin_sdk::export_plugin!(Guard: matcher);

#[cfg(test)]
mod tests {
    use intake_plugin_sdk::testing::{MessageBuilder, run_matcher};
    use intake_plugin_sdk::{MemoryDirectory, Outcome, Terminal};

    use super::*;

    fn run(config: &str, m: &Message) -> Verdict {
        run_matcher::<Guard>(config, m, &MemoryDirectory::new()).unwrap()
    }

    #[test]
    fn passes_personal_mail() {
        let m = MessageBuilder::new()
            .from("ann@acme.example")
            .subject("Quote")
            .build();
        assert_eq!(run("{}", &m).outcome, Outcome::NoOpinion);
    }

    #[test]
    fn discards_out_of_office_by_default() {
        let m = MessageBuilder::new()
            .from("ann@acme.example")
            .header("Auto-Submitted", "auto-replied")
            .build();
        match run("{}", &m).outcome {
            Outcome::EndChain(Terminal::Discard(reason)) => {
                assert!(reason.contains("Auto-Submitted"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn quarantines_bounces_when_configured() {
        let m = MessageBuilder::new()
            .from("MAILER-DAEMON@mx.example")
            .content_type("multipart/report; report-type=delivery-status; boundary=x")
            .build();
        let v = run(
            r#"{"action": "quarantine", "server_action": "move:Bounces"}"#,
            &m,
        );
        assert!(matches!(
            v.outcome,
            Outcome::EndChain(Terminal::Quarantine(_))
        ));
        assert_eq!(
            v.server_action,
            Some(ServerAction::MoveTo("Bounces".into()))
        );
    }

    #[test]
    fn list_and_robot_checks_can_be_disabled() {
        let list = MessageBuilder::new()
            .from("dev@lists.example")
            .header("List-Id", "<dev.lists.example>")
            .build();
        assert_eq!(
            run(r#"{"mailing_lists": false}"#, &list).outcome,
            Outcome::NoOpinion
        );
        let robot = MessageBuilder::new().from("noreply@shop.example").build();
        assert_eq!(
            run(r#"{"robot_senders": false}"#, &robot).outcome,
            Outcome::NoOpinion
        );
        assert!(matches!(run("{}", &robot).outcome, Outcome::EndChain(_)));
    }

    #[test]
    fn rejects_unknown_server_action() {
        let m = MessageBuilder::new().build();
        let err = run_matcher::<Guard>(
            r#"{"server_action": "explode"}"#,
            &m,
            &MemoryDirectory::new(),
        )
        .unwrap_err();
        assert!(err.contains("explode"), "{err}");
    }
}
