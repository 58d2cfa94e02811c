//! Running the plugin chain offline over `.eml` files, for plugin authors and
//! for `intake plugin test`: no server, no database, an in-memory directory.
//!
//! Messages are processed in path order and the directory learns as it goes,
//! as the real pipeline's store would: a created lead is added, and each
//! decided message's links are recorded under its Message-ID, so a later reply
//! in the same run can be threaded.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;

use crate::directory::{MemoryDirectory, Party, PartyKind};
use crate::parse::Envelope;
use crate::parse::Origin;
use crate::pipeline::decide::decide;
use crate::plugin::{Chain, Decision, Disposition, Step};

/// One message's result, printed as a JSON line.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The file.
    pub file: String,
    /// Message-ID, if any.
    pub message_id: Option<String>,
    /// First From address.
    pub from: Option<String>,
    /// Subject.
    pub subject: Option<String>,
    /// What the chain decided.
    pub disposition: Disposition,
    /// Server action suggested by the deciding plugin.
    pub server_action: Option<crate::plugin::ServerAction>,
    /// Plugin that decided.
    pub decided_by: Option<String>,
    /// Per-plugin steps with timings.
    pub steps: Vec<Step>,
}

/// Every message file under `path`: the file itself, or the regular files
/// below a directory (recursively, hidden files skipped), sorted by path.
pub fn message_files(path: &Path) -> std::io::Result<Vec<PathBuf>> {
    if std::fs::metadata(path)?.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    crate::fetch::files::files_below(path)
}

/// The offline runner: a chain, an in-memory directory and a tenant.
#[derive(Debug)]
pub struct OfflineRun {
    /// The chain to run.
    pub chain: Chain,
    /// Contacts and leads (and what this run learned).
    pub directory: Arc<MemoryDirectory>,
    /// Tenant every message belongs to.
    pub tenant: String,
    /// Body cap passed to plugins.
    pub max_body_bytes: usize,
}

impl OfflineRun {
    /// Runs the chain on one file, through the pipeline's own
    /// [`decide`](crate::pipeline::decide::decide). Unparseable input is
    /// reported as a quarantine, as the pipeline stores it.
    pub async fn run_file(&self, path: &Path) -> std::io::Result<Report> {
        let raw = bytes::Bytes::from(std::fs::read(path)?);
        let envelope = Envelope {
            tenant_id: self.tenant.clone(),
            account_id: "offline".into(),
            origin: Origin::File(path.display().to_string()),
        };
        let decided = decide(
            &self.chain,
            self.directory.clone(),
            &envelope,
            raw,
            self.max_body_bytes,
        )
        .await;
        let meta = decided.meta();
        self.learn(meta.message_id.as_deref(), &decided.decision);
        Ok(Report {
            file: path.display().to_string(),
            message_id: meta.message_id,
            from: meta.from,
            subject: meta.subject,
            disposition: decided.decision.disposition,
            server_action: decided.decision.server_action,
            decided_by: decided.decision.decided_by,
            steps: decided.decision.steps,
        })
    }

    /// Applies a decision to the in-memory directory, as the store would.
    fn learn(&self, message_id: Option<&str>, decision: &Decision) {
        let refs = match &decision.disposition {
            Disposition::Attach { parties } => parties.iter().map(Party::to_ref).collect(),
            Disposition::CreateLead { lead } => {
                let id = self.directory.insert(
                    &self.tenant,
                    Party {
                        kind: PartyKind::Lead,
                        id: String::new(),
                        email: lead.email.clone(),
                        name: lead.name.clone(),
                        company: lead.company.clone(),
                        external_id: None,
                    },
                );
                vec![crate::directory::PartyRef {
                    kind: PartyKind::Lead,
                    id,
                }]
            }
            _ => Vec::new(),
        };
        if let (Some(id), false) = (message_id, refs.is_empty()) {
            self.directory.link_message(&self.tenant, id, &refs);
        }
    }
}
