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

/// The message files a path names, and the files beside them that were
/// left out.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct MessageFiles {
    /// Mail to run the chain on, sorted by path.
    pub messages: Vec<PathBuf>,
    /// Files of a directory that are not mail (a CSV beside the messages),
    /// with why.
    pub skipped: Vec<(PathBuf, &'static str)>,
}

/// The message files under `path`: the file itself (named, so taken as
/// mail whatever it holds), or the mail files below a directory
/// (recursively, hidden files skipped): `.eml` files, and files whose first
/// line is a header field or an mbox `From ` line (Maildir names have no
/// extension). Everything else is listed in `skipped`.
pub fn message_files(path: &Path) -> std::io::Result<MessageFiles> {
    if std::fs::metadata(path)?.is_file() {
        return Ok(MessageFiles {
            messages: vec![path.to_path_buf()],
            skipped: Vec::new(),
        });
    }
    let mut found = MessageFiles::default();
    for file in crate::fetch::files::files_below(path)? {
        match mail_file(&file)? {
            Ok(()) => found.messages.push(file),
            Err(why) => found.skipped.push((file, why)),
        }
    }
    Ok(found)
}

/// Whether a file in a directory is mail: `Ok(())`, or why not.
fn mail_file(path: &Path) -> std::io::Result<Result<(), &'static str>> {
    let eml = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("eml"));
    if eml {
        return Ok(Ok(()));
    }
    let mut head = [0u8; 512];
    let n = {
        use std::io::Read;
        let mut file = std::fs::File::open(path)?;
        let mut n = 0;
        while n < head.len() {
            match file.read(&mut head[n..])? {
                0 => break,
                read => n += read,
            }
        }
        n
    };
    Ok(if looks_like_mail(&head[..n]) {
        Ok(())
    } else {
        Err(
            "not an .eml file and does not start like a mail message (a header line or an mbox From line)",
        )
    })
}

/// True if `head` starts like an RFC 5322 message (`Name: value`, the
/// name made of letters, digits and hyphens) or an mbox (`From `).
pub fn looks_like_mail(head: &[u8]) -> bool {
    if head.starts_with(b"From ") {
        return true;
    }
    let name_len = head
        .iter()
        .take_while(|b| b.is_ascii_alphanumeric() || **b == b'-')
        .count();
    name_len > 0 && head.get(name_len) == Some(&b':')
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
    /// Runs the chain on every message of a file, through the pipeline's
    /// own [`decide`](crate::pipeline::decide::decide): the messages of an
    /// mbox (a file that starts with a `From ` line), each reported as
    /// `PATH#N` (from 1), or the file as one message. Unparseable input is
    /// reported as a quarantine, as the pipeline stores it.
    pub async fn run_path(&self, path: &Path) -> std::io::Result<Vec<Report>> {
        let data = std::fs::read(path)?;
        if !data.starts_with(b"From ") {
            return Ok(vec![
                self.run_raw(path.display().to_string(), data.into()).await,
            ]);
        }
        let mut reports = Vec::new();
        for (n, (offset, len)) in crate::fetch::files::mbox_ranges(&data)
            .into_iter()
            .enumerate()
        {
            let (start, end) = (offset as usize, (offset + len) as usize);
            let raw = crate::fetch::files::mbox_message(&data[start..end]);
            let label = format!("{}#{}", path.display(), n + 1);
            reports.push(self.run_raw(label, raw.into()).await);
        }
        Ok(reports)
    }

    /// Runs the chain on one message's bytes, `label` naming it in the
    /// report.
    async fn run_raw(&self, label: String, raw: bytes::Bytes) -> Report {
        let envelope = Envelope {
            tenant_id: self.tenant.clone(),
            account_id: "offline".into(),
            origin: Origin::File(label.clone()),
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
        Report {
            file: label,
            message_id: meta.message_id,
            from: meta.from,
            subject: meta.subject,
            disposition: decided.decision.disposition,
            server_action: decided.decision.server_action,
            decided_by: decided.decision.decided_by,
            steps: decided.decision.steps,
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_mail_is_taken_from_a_directory() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
        write("a.eml", "anything");
        write(
            "1700000000.M1P2.host:2,S",
            "Return-Path: <a@b>\r\nFrom: a@b\r\n\r\nhi",
        );
        write(
            "box.mbox",
            "From a@b Thu Jan  1 00:00:00 2026\nFrom: a@b\n\nhi\n",
        );
        write(
            "contacts.csv",
            "email,name,company,kind\nann@acme.example,Ann,,contact\n",
        );
        write("notes.txt", "to do: nothing");
        let found = message_files(dir.path()).unwrap();
        let names = |paths: Vec<&PathBuf>| -> Vec<String> {
            paths
                .iter()
                .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
                .collect()
        };
        assert_eq!(
            names(found.messages.iter().collect()),
            ["1700000000.M1P2.host:2,S", "a.eml", "box.mbox"]
        );
        assert_eq!(
            names(found.skipped.iter().map(|(p, _)| p).collect()),
            ["contacts.csv", "notes.txt"]
        );
        // A file named on its own is taken as it is.
        let csv = dir.path().join("contacts.csv");
        assert_eq!(message_files(&csv).unwrap().messages, [csv]);
    }
}
