//! Server actions: what a committed message's acknowledgement is (the
//! account's default, or the deciding plugin's suggestion capped by the
//! account), carrying them out after the commit, and retrying the ones an
//! earlier run left queued.

use std::collections::HashMap;

use super::{Pipeline, PipelineError, Run, Summary};
use crate::fetch::{
    AccountSettings, Acknowledge, FetchError, FolderCursor, MailSource, MessageRef, Protocol,
};
use crate::plugin::ServerAction;
use crate::store::{PendingActionId, ServerKey};

/// Server actions carried out in this run, until their queue rows go.
#[derive(Default)]
pub(super) struct Done {
    /// Whether the source makes them true only at a clean close.
    pub(super) at_close: bool,
    /// True on the server now: forgotten with the next commit.
    pub(super) confirmed: Vec<PendingActionId>,
    /// True on the server after a clean close (POP3).
    pub(super) at_close_ids: Vec<PendingActionId>,
}

impl Done {
    pub(super) fn acknowledged(&mut self, ids: Vec<PendingActionId>) {
        if self.at_close {
            self.at_close_ids.extend(ids);
        } else {
            self.confirmed.extend(ids);
        }
    }

    pub(super) fn take_confirmed(&mut self) -> Vec<PendingActionId> {
        std::mem::take(&mut self.confirmed)
    }
}

impl Pipeline {
    /// Carries out the account's actions queued by earlier runs that
    /// belong to `folder` (they failed, or the run ended before them).
    pub(super) async fn retry_queued(
        &self,
        ctx: &Run<'_>,
        source: &mut dyn MailSource,
        folder: &str,
        pop3_numbers: &HashMap<String, u32>,
        done: &mut Done,
        summary: &mut Summary,
    ) -> Result<(), PipelineError> {
        let pending = self
            .store
            .pending_actions(ctx.tenant, ctx.account_id)
            .await?;
        let mut todo: Vec<(PendingActionId, MessageRef, Acknowledge)> = Vec::new();
        for p in pending {
            let message = match &p.key {
                ServerKey::Imap {
                    folder: f,
                    uid_validity,
                    uid,
                } if f == folder => MessageRef::Imap {
                    folder: f.clone(),
                    uid_validity: *uid_validity,
                    uid: *uid,
                },
                ServerKey::Pop3 { uidl } => match pop3_numbers.get(uidl) {
                    Some(&number) => MessageRef::Pop3 {
                        uidl: uidl.clone(),
                        number,
                    },
                    // Not on the server any more (deleted elsewhere): done.
                    None if !pop3_numbers.is_empty() => {
                        done.confirmed.push(p.id);
                        continue;
                    }
                    None => continue,
                },
                _ => continue,
            };
            todo.push((p.id, message, p.action));
        }
        self.carry_out(ctx, source, todo, done, summary).await
    }

    /// Carries out committed actions. Successes go to `done` (forgotten
    /// with the next commit, or after a clean close where the protocol
    /// makes them true only then); failures are recorded for the next run.
    pub(super) async fn carry_out(
        &self,
        ctx: &Run<'_>,
        source: &mut dyn MailSource,
        todo: Vec<(PendingActionId, MessageRef, Acknowledge)>,
        done: &mut Done,
        summary: &mut Summary,
    ) -> Result<(), PipelineError> {
        if todo.is_empty() {
            return Ok(());
        }
        let (ids, actions): (Vec<PendingActionId>, Vec<(MessageRef, Acknowledge)>) =
            todo.into_iter().map(|(id, m, a)| (id, (m, a))).unzip();
        match source.acknowledge(&actions).await {
            Ok(()) => {
                summary.actions_done += ids.len();
                done.acknowledged(ids);
            }
            Err(e) => {
                summary.actions_failed += ids.len();
                tracing::warn!(account = %ctx.settings.name, error = %e, "server actions failed; they are retried on the next run");
                self.store
                    .record_action_failures(ctx.tenant, &ids, &e.to_string())
                    .await?;
            }
        }
        Ok(())
    }
}

/// UIDL → message number in this POP3 session.
pub(super) async fn pop3_numbers(
    source: &mut dyn MailSource,
    folder: &str,
) -> Result<HashMap<String, u32>, FetchError> {
    let all = source.list(folder, &FolderCursor::default()).await?;
    Ok(all
        .new
        .iter()
        .chain(all.too_large.iter())
        .filter_map(|l| match &l.message {
            MessageRef::Pop3 { uidl, number } => Some((uidl.clone(), *number)),
            _ => None,
        })
        .collect())
}

/// What the account does with a message once it is stored: keep a copy →
/// mark it seen; otherwise delete it. Imports never touch their files.
pub(super) fn default_action(settings: &AccountSettings) -> Acknowledge {
    if settings.keep_on_server {
        Acknowledge::MarkSeen
    } else {
        Acknowledge::Delete
    }
}

/// A plugin's suggestion, capped by the account: an account that keeps
/// copies never deletes; POP3 cannot move.
pub(super) fn capped_action(
    settings: &AccountSettings,
    suggested: Option<&ServerAction>,
) -> Acknowledge {
    match suggested {
        None => default_action(settings),
        Some(ServerAction::Leave) => Acknowledge::Leave,
        Some(ServerAction::MarkSeen) => Acknowledge::MarkSeen,
        Some(ServerAction::Delete) if settings.keep_on_server => Acknowledge::MarkSeen,
        Some(ServerAction::Delete) => Acknowledge::Delete,
        Some(ServerAction::MoveTo(_)) if settings.protocol == Protocol::Pop3 => {
            default_action(settings)
        }
        Some(ServerAction::MoveTo(folder)) => Acknowledge::MoveTo(folder.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fetch;

    #[test]
    fn plugin_suggestions_are_capped_by_the_account() {
        let mut a = AccountSettings::new(
            "a",
            Protocol::Imap,
            "h",
            fetch::Security::Tls,
            "u",
            fetch::Secret::new("p"),
        );
        a.keep_on_server = true;
        assert_eq!(
            capped_action(&a, Some(&ServerAction::Delete)),
            Acknowledge::MarkSeen
        );
        assert_eq!(capped_action(&a, None), Acknowledge::MarkSeen);
        a.keep_on_server = false;
        assert_eq!(capped_action(&a, None), Acknowledge::Delete);
        assert_eq!(
            capped_action(&a, Some(&ServerAction::MoveTo("X".into()))),
            Acknowledge::MoveTo("X".into())
        );
        a.protocol = Protocol::Pop3;
        assert_eq!(
            capped_action(&a, Some(&ServerAction::MoveTo("X".into()))),
            Acknowledge::Delete
        );
    }
}
