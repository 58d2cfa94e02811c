//! Time and peak memory of one hostile-server mode: `hostile-bench MODE
//! [CAP_SECONDS]`. Runs what `intake fetch` runs against the source (list
//! every window, fetch in batches of 100, close) or "Test settings", with a
//! 10 s idle timeout, and prints one line: mode, seconds, peak RSS, outcome.

use std::time::{Duration, Instant};

use intake::fetch::{FetchError, FolderCursor, MessageKey, Protocol, check, open};
use intake_tests::hostile::{Fault, Hostile};

async fn fetch_all(settings: &intake::fetch::AccountSettings) -> Result<usize, FetchError> {
    let mut source = open(settings).await?;
    let mut total = 0;
    for folder in source.folders() {
        let mut listing = Some(source.list(&folder, &FolderCursor::default()).await?);
        // Window by window, as the pipeline does.
        while let Some(window) = listing {
            let refs: Vec<MessageKey> = window.new.iter().map(|l| l.message.clone()).collect();
            drop(window);
            for chunk in refs.chunks(100) {
                total += source.fetch(chunk).await?.len();
            }
            listing = source.list_more(&folder).await?;
        }
    }
    source.close().await?;
    Ok(total)
}

fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let mode = args.next().expect("mode");
    let cap: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(60);
    let (protocol, fault, messages, test_settings) = match mode.as_str() {
        "imap-ok" => (Protocol::Imap, Fault::None, 1_000, false),
        "imap-slow" => (Protocol::Imap, Fault::Slow, 3, false),
        "imap-slow-check" => (Protocol::Imap, Fault::Slow, 3, true),
        "imap-endless-line" => (Protocol::Imap, Fault::EndlessLine, 3, false),
        "imap-listing-1m" => (Protocol::Imap, Fault::None, 1_000_000, false),
        "imap-huge-literal" => (Protocol::Imap, Fault::HugeLiteral, 3, false),
        "imap-garbage" => (Protocol::Imap, Fault::Garbage, 3, false),
        "imap-bad-fetch" => (Protocol::Imap, Fault::BadFetch, 3, false),
        "imap-tagged-no" => (Protocol::Imap, Fault::TaggedNo, 3, false),
        "imap-foreign-uids" => (Protocol::Imap, Fault::ForeignUids, 3, false),
        "imap-duplicate-uid" => (Protocol::Imap, Fault::DuplicateUid, 3, false),
        "imap-cut-literal" => (Protocol::Imap, Fault::CutLiteral, 3, false),
        "imap-search-1m" | "imap-search-3m" => (
            Protocol::Imap,
            Fault::None,
            if mode.ends_with("1m") {
                1_000_000
            } else {
                3_000_000
            },
            false,
        ),
        "imap-listing-3m" => (Protocol::Imap, Fault::None, 3_000_000, false),
        "pop3-slow" => (Protocol::Pop3, Fault::Slow, 3, false),
        "pop3-slow-check" => (Protocol::Pop3, Fault::Slow, 3, true),
        "pop3-unstuffed" => (Protocol::Pop3, Fault::UnstuffedDot, 8, false),
        "pop3-mismatch" => (Protocol::Pop3, Fault::ListUidlMismatch, 6, false),
        "pop3-in-use-check" => (Protocol::Pop3, Fault::LoginRefused, 3, true),
        other => panic!("unknown mode {other}"),
    };
    let server = Hostile::start(protocol, intake_tests::hostile::Script { fault, messages }).await;
    let mut settings = server.account(Duration::from_secs(10));
    if mode.starts_with("imap-search") {
        settings.mode = intake::fetch::FetchMode::Unseen;
    }
    let started = Instant::now();
    let outcome = tokio::time::timeout(Duration::from_secs(cap), async {
        if test_settings {
            let report = check::test_account(&settings).await;
            let last = report.steps.last().unwrap();
            format!(
                "check: {} {} {}: {}",
                if report.ok() { "ok" } else { "failed at" },
                last.name,
                last.detail,
                last.hint.clone().unwrap_or_default()
            )
        } else {
            match fetch_all(&settings).await {
                Ok(n) => format!("ok: {n} messages"),
                Err(e) => format!("error: {e}"),
            }
        }
    })
    .await
    .unwrap_or_else(|_| format!("still running at {cap} s (stopped)"));
    let secs = started.elapsed().as_secs_f64();
    let len = outcome.len();
    let shown: String = outcome.chars().take(220).collect();
    println!(
        "{mode:<20} {secs:>7.1}s {:>8.1} MB  [{len} chars] {}",
        peak_rss_mb(),
        shown.replace('\n', " ")
    );
}
