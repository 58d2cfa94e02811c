//! Server actions: carrying them out after the commit, and retrying the
//! ones an earlier run left queued. What an action is (the account's
//! default, or the deciding plugin's suggestion capped by the account) is
//! [`crate::domain::capped_action`]; how it is done on the server, the
//! source's business.

use super::{Pipeline, PipelineError, Run, Summary};
use crate::domain::{Acknowledge, MessageKey};
use crate::fetch::MailSource;
use crate::store::PendingActionId;

/// Server actions carried out in this run, until their queue rows go.
#[derive(Default)]
pub(super) struct Done {
    /// Whether the source makes them true only at a clean close.
    pub(super) at_close: bool,
    /// True on the server now: forgotten with the next commit.
    pub(super) confirmed: Vec<PendingActionId>,
    /// True on the server after a clean close (see
    /// [`MailSource::acknowledged_at_close`]).
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
    /// belong to `folder` (they failed, or the run ended before them). The
    /// source maps each message to its session itself; one it no longer
    /// finds on the server needs nothing more. Actions this source cannot
    /// carry out (an import's source, for mail on a server) stay queued.
    pub(super) async fn retry_queued(
        &self,
        ctx: &Run<'_>,
        source: &mut dyn MailSource,
        folder: &str,
        done: &mut Done,
        summary: &mut Summary,
    ) -> Result<(), PipelineError> {
        let pending = self
            .store
            .pending_actions(ctx.tenant, ctx.account_id)
            .await?;
        let todo: Vec<(PendingActionId, MessageKey, Acknowledge)> = pending
            .into_iter()
            .filter(|p| p.key.folder() == Some(folder) && source.can_act_on(&p.key))
            .map(|p| (p.id, p.key, p.action))
            .collect();
        self.carry_out(ctx, source, todo, done, summary).await
    }

    /// Carries out committed actions. Successes go to `done` (forgotten
    /// with the next commit, or after a clean close where the protocol
    /// makes them true only then); failures are recorded for the next run.
    pub(super) async fn carry_out(
        &self,
        ctx: &Run<'_>,
        source: &mut dyn MailSource,
        todo: Vec<(PendingActionId, MessageKey, Acknowledge)>,
        done: &mut Done,
        summary: &mut Summary,
    ) -> Result<(), PipelineError> {
        if todo.is_empty() {
            return Ok(());
        }
        let (ids, actions): (Vec<PendingActionId>, Vec<(MessageKey, Acknowledge)>) =
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
