//! `intake fetch` and `intake import`: the pipeline over a mailbox or local files, with a progress bar, a summary, and a clean stop on Ctrl-C / SIGTERM.

use super::*;
use crate::service::{RetryPolicy, Service, ServiceOptions};

/// `intake fetch`.
#[derive(Debug, Args)]
pub(crate) struct FetchArgs {
    /// Only this account (default: every enabled account of the tenant).
    #[arg(long)]
    account: Option<String>,
    /// Messages per batch (one transaction each).
    #[arg(long, default_value_t = 100)]
    batch: usize,
    /// Messages of a batch decided (parsed and run through the plugin
    /// chain) at once. Default: one per core.
    #[arg(long, env = "INTAKE_DECIDE_WORKERS")]
    decide_workers: Option<usize>,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
}

/// A progress bar on a terminal for long first syncs.
struct Bar(indicatif::ProgressBar);

impl Progress for Bar {
    fn listed(&self, account: &str, folder: &str, total: usize) {
        self.0.set_length(total as u64);
        self.0.set_position(0);
        self.0.set_message(format!("{account} {folder}"));
    }
    fn committed(&self, n: usize) {
        self.0.inc(n as u64);
    }
}

fn progress() -> Box<dyn Progress> {
    if !std::io::stderr().is_terminal() {
        return Box::new(Quiet);
    }
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg:>24} [{bar:30}] {pos}/{len} {per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    Box::new(Bar(bar))
}

fn print_summary(out: &mut (dyn Write + Send), s: &Summary) -> std::io::Result<()> {
    writeln!(
        out,
        "{:<16} fetched {:>5}  attached {:>5}  new leads {:>4}  quarantined {:>4}  discarded {:>4}  unlinked {:>4}  skipped {:>3}  duplicates {:>3}  server actions {} done, {} failed{}",
        safe(&s.account),
        s.fetched,
        s.attached,
        s.new_leads,
        s.quarantined,
        s.discarded,
        s.unlinked,
        s.skipped_too_large,
        s.duplicates,
        s.actions_done,
        s.actions_failed,
        if s.actions_failed > 0 {
            " (retried next run)"
        } else {
            ""
        }
    )?;
    if s.deferred + s.retried > 0 {
        writeln!(
            out,
            "{:<16} deferred {} (a plugin failed temporarily: decided again on a later run); retried {}: {} stored, {} held in quarantine",
            safe(&s.account),
            s.deferred,
            s.retried,
            s.retried_stored,
            s.retried_held,
        )?;
    }
    if s.interrupted {
        writeln!(
            out,
            "{:<16} note: stopped early on request; the rest is fetched next run",
            safe(&s.account)
        )?;
    }
    for folder in &s.uid_validity_changes {
        writeln!(
            out,
            "{:<16} note: UIDVALIDITY of {} changed; it was re-listed (duplicates skipped)",
            safe(&s.account),
            safe(folder)
        )?;
    }
    Ok(())
}

pub(crate) async fn fetch(
    c: &Config,
    args: FetchArgs,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<ExitCode> {
    let (store, tenant) = open(c, OpenMode::Create).await?;
    let accounts: Vec<String> = match &args.account {
        Some(name) => vec![name.clone()],
        None => store
            .accounts(tenant)
            .await?
            .into_iter()
            .filter(|a| a.config.enabled)
            .map(|a| a.config.name)
            .collect(),
    };
    if accounts.is_empty() {
        bail!(
            "tenant {:?} has no enabled accounts in the store {}: add one with `intake account add`",
            c.tenant,
            c.store.display()
        );
    }
    // Only now: a store without accounts needs no key.
    let key = c.master_key()?;
    ensure_default_chain(c, &store, tenant, out).await?;
    let shutdown = stop_on_signal();
    let pipeline = pipeline(&store, Some(args.batch), args.decide_workers, &shutdown)?;
    // Through the service layer, as `intake serve` does: the account's
    // lease (a running service is never doubled) and its state.
    let service = Service::new(
        store.clone(),
        Arc::new(pipeline),
        Some(key),
        ServiceOptions {
            worker_id: format!("fetch:{}", crate::serve::worker_id()),
            lease: Duration::from_secs(60),
            retry: RetryPolicy::default(),
            progress_every: crate::service::PROGRESS_EVERY,
        },
    );
    let bar = progress();
    let mut failed = false;
    for name in accounts {
        if shutdown.is_cancelled() {
            writeln!(out, "{:<16} not checked: stopping", safe(&name))?;
            continue;
        }
        let id = store.account_id(tenant, &name).await?;
        let report = service
            .check_account_with(tenant, &c.tenant, id, &name, bar.as_ref())
            .await?;
        let Some(report) = report else {
            writeln!(
                out,
                "{:<16} skipped: another worker (a running `intake serve`?) is checking it now",
                safe(&name)
            )?;
            continue;
        };
        match (report.summary, report.error) {
            (Some(summary), _) if args.json => {
                writeln!(out, "{}", serde_json::to_string(&summary)?)?
            }
            (Some(summary), _) => print_summary(out, &summary)?,
            (None, Some(e)) => {
                failed = true;
                let key_note = match &e {
                    crate::pipeline::PipelineError::Store(crate::store::Error::WrongKey {
                        ..
                    }) => format!(" (the master key in use came from {})", c.key.describe()),
                    _ => String::new(),
                };
                writeln!(
                    out,
                    "{:<16} FAILED: {}{key_note}{}",
                    safe(&name),
                    safe(&e.to_string()),
                    crate::fetch::hint_line(&e)
                )?;
            }
            (None, None) => failed = true,
        }
        if report.health.state == crate::store::HealthState::Disabled {
            writeln!(
                out,
                "{:<16} note: {}",
                safe(&name),
                safe(&format!(
                    "disabled after repeated failures; `intake account enable {name}` once fixed"
                ))
            )?;
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// `intake import`.
#[derive(Debug, Args)]
#[group(skip)]
pub(crate) struct ImportArgs {
    /// A Maildir.
    #[arg(long, conflicts_with_all = ["mbox", "eml"])]
    maildir: Option<PathBuf>,
    /// An mbox file.
    #[arg(long, conflicts_with = "eml")]
    mbox: Option<PathBuf>,
    /// An .eml file or a directory of them.
    #[arg(long)]
    eml: Option<PathBuf>,
    /// The account the messages belong to.
    #[arg(long)]
    account: String,
}

pub(crate) async fn import(
    c: &Config,
    args: ImportArgs,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<ExitCode> {
    let (store, tenant) = open(c, OpenMode::Create).await?;
    store.account_id(tenant, &args.account).await?;
    let key = c.master_key()?;
    ensure_default_chain(c, &store, tenant, out).await?;
    let set = match (args.maildir, args.mbox, args.eml) {
        (Some(p), _, _) => FileSet::Maildir(p),
        (_, Some(p), _) => FileSet::Mbox(p),
        (_, _, Some(p)) => FileSet::Eml(p),
        _ => bail!("say what to import: --maildir DIR, --mbox FILE or --eml PATH"),
    };
    let settings = store
        .settings(tenant, &args.account, &key)
        .await
        .map_err(|e| key_hint(c, e))?;
    let source = FileSource::new(set, settings.max_message_bytes)?;
    let runtime = Arc::new(PluginRuntime::new(RuntimeConfig::default())?);
    let pipeline =
        Pipeline::new(store, runtime, Options::default()).with_shutdown(stop_on_signal());
    let summary = pipeline
        .import(&c.tenant, &args.account, &key, source, progress().as_ref())
        .await?;
    print_summary(out, &summary)?;
    Ok(ExitCode::SUCCESS)
}

/// A token cancelled by the first Ctrl-C or SIGTERM: the run then finishes
/// the commit in flight, carries out its server actions, logs out and
/// prints its summary. A second signal stops at once (exit 130); what was
/// committed stays committed, and the rest is fetched again next time.
pub(super) fn stop_on_signal() -> tokio_util::sync::CancellationToken {
    let token = tokio_util::sync::CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        let mut signals = 0;
        loop {
            wait_for_stop_signal().await;
            signals += 1;
            if signals > 1 {
                eprintln!("intake: stopping now");
                std::process::exit(130);
            }
            eprintln!(
                "intake: stopping after the batch in flight is committed (press Ctrl-C again to stop at once)"
            );
            cancel.cancel();
        }
    });
    token
}

/// Ctrl-C, or SIGTERM where there is one.
async fn wait_for_stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_always_shows_failed_server_actions() {
        let mut summary = Summary {
            account: "sales\x1b[2J".into(),
            actions_done: 3,
            ..Summary::default()
        };
        let mut out = Vec::new();
        print_summary(&mut out, &summary).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("server actions 3 done, 0 failed"), "{text}");
        assert!(text.starts_with("sales^[[2J"), "{text}");
        summary.actions_failed = 2;
        let mut out = Vec::new();
        print_summary(&mut out, &summary).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains("3 done, 2 failed (retried next run)"),
            "{text}"
        );
    }
}
