//! IMAP against a scripted hostile server (issue 9): every misbehaviour ends
//! in a short error that names the step, within the configured time, with
//! nothing half-fetched handed on; large folders list in bounded windows.

use std::time::{Duration, Instant};

use intake::fetch::diagnosis::FailureClass;
use intake::fetch::imap::LIST_WINDOW;
use intake::fetch::{FetchError, FetchMode, FolderCursor, MailSource, MessageKey, NetError, open};
use intake_tests::hostile::{Fault, Hostile, mail};

/// Opens, lists INBOX and fetches everything listed in one batch.
async fn fetch_all(server: &Hostile, io: Duration) -> Result<Vec<Vec<u8>>, FetchError> {
    let mut source = open(&server.account(io)).await?;
    let listing = source.list("INBOX", &FolderCursor::default()).await?;
    let refs: Vec<MessageKey> = listing.new.iter().map(|l| l.message.clone()).collect();
    let fetched = source.fetch(&refs).await?;
    Ok(fetched.into_iter().map(|f| f.raw.to_vec()).collect())
}

/// A user-facing error: short, no parser dump, no message content.
fn assert_short(e: &FetchError) -> String {
    let text = e.to_string();
    assert!(text.len() < 400, "{} chars: {text}", text.len());
    for leak in [
        "Subject",
        "From:",
        "hostile.example",
        "[42, 32",
        "OtherError",
        "code:",
    ] {
        assert!(!text.contains(leak), "{leak:?} in {text}");
    }
    text
}

#[tokio::test]
async fn a_slow_server_is_cut_off_by_the_exchange_deadline() {
    let server = Hostile::imap(Fault::Slow, 3).await;
    let clock = Instant::now();
    let e = fetch_all(&server, Duration::from_secs(2))
        .await
        .unwrap_err();
    let took = clock.elapsed();
    assert!(took < Duration::from_secs(6), "took {took:?}");
    assert!(
        matches!(e, FetchError::Net(NetError::TooSlow { .. })),
        "{e}"
    );
    assert_eq!(e.class(), FailureClass::Network);
    assert!(assert_short(&e).contains("too slow"));
}

#[tokio::test]
async fn an_endless_line_is_refused_before_the_parser_sees_it() {
    let server = Hostile::imap(Fault::EndlessLine, 3).await;
    let clock = Instant::now();
    let e = fetch_all(&server, Duration::from_secs(5))
        .await
        .unwrap_err();
    assert!(
        clock.elapsed() < Duration::from_secs(5),
        "{:?}",
        clock.elapsed()
    );
    let text = assert_short(&e);
    assert!(
        text.contains("line longer than") && text.contains("UID FETCH"),
        "{text}"
    );
}

#[tokio::test]
async fn an_oversized_literal_is_a_short_error() {
    let server = Hostile::imap(Fault::HugeLiteral, 3).await;
    let e = fetch_all(&server, Duration::from_secs(5))
        .await
        .unwrap_err();
    let text = assert_short(&e);
    assert!(text.contains("literal of 99999999999 bytes"), "{text}");
}

#[tokio::test]
async fn garbage_in_a_fetch_response_is_a_short_error() {
    let server = Hostile::imap(Fault::Garbage, 3).await;
    let e = fetch_all(&server, Duration::from_secs(2))
        .await
        .unwrap_err();
    assert_short(&e);
}

#[tokio::test]
async fn an_unparseable_fetch_response_is_a_short_error_naming_the_step() {
    let server = Hostile::imap(Fault::BadFetch, 3).await;
    let e = fetch_all(&server, Duration::from_secs(2))
        .await
        .unwrap_err();
    let text = assert_short(&e);
    assert!(text.contains("UID FETCH"), "{text}");
}

#[tokio::test]
async fn a_tagged_no_is_reported_with_the_servers_words() {
    let server = Hostile::imap(Fault::TaggedNo, 3).await;
    let e = fetch_all(&server, Duration::from_secs(5))
        .await
        .unwrap_err();
    let text = assert_short(&e);
    assert!(
        text.contains("NO [SERVERBUG] Internal error occurred")
            && !text.contains("connection lost"),
        "{text}"
    );
    assert!(text.contains("1 of the 3"), "{text}");
}

#[tokio::test]
async fn answers_for_uids_not_asked_for_are_named() {
    let server = Hostile::imap(Fault::ForeignUids, 3).await;
    let e = fetch_all(&server, Duration::from_secs(5))
        .await
        .unwrap_err();
    let text = assert_short(&e);
    assert!(
        text.contains("not asked for") && !text.contains("connection lost"),
        "{text}"
    );
}

#[tokio::test]
async fn a_second_copy_of_a_uid_never_replaces_the_first() {
    let server = Hostile::imap(Fault::DuplicateUid, 3).await;
    let got = fetch_all(&server, Duration::from_secs(5)).await.unwrap();
    assert_eq!(got, vec![mail(1), mail(2), mail(3)]);
}

#[tokio::test]
async fn a_literal_cut_short_says_so() {
    let server = Hostile::imap(Fault::CutLiteral, 3).await;
    let e = fetch_all(&server, Duration::from_secs(5))
        .await
        .unwrap_err();
    let text = assert_short(&e);
    assert!(
        text.contains("closed") && text.contains("before the end of a message"),
        "{text}"
    );
    assert!(!text.contains("bytes remaining"), "{text}");
}

#[tokio::test]
async fn a_refused_login_is_user_facing_text() {
    let server = Hostile::imap(Fault::LoginRefused, 3).await;
    let e = open(&server.account(Duration::from_secs(5)))
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "authentication failed: [AUTHENTICATIONFAILED] Authentication failed."
    );
    assert_eq!(e.class(), FailureClass::Auth);
}

/// Lists INBOX window by window; returns every UID and the largest window.
async fn list_windows(source: &mut Box<dyn MailSource>) -> (Vec<u32>, usize) {
    let mut uids = Vec::new();
    let mut largest = 0;
    let mut listing = Some(
        source
            .list("INBOX", &FolderCursor::default())
            .await
            .unwrap(),
    );
    while let Some(l) = listing {
        largest = largest.max(l.new.len());
        uids.extend(l.new.iter().map(|m| match m.message {
            MessageKey::Imap { uid, .. } => uid,
            _ => unreachable!(),
        }));
        listing = source.list_more("INBOX").await.unwrap();
    }
    (uids, largest)
}

#[tokio::test]
async fn a_large_folder_is_listed_in_bounded_windows_in_both_modes() {
    let n = 3 * LIST_WINDOW + 123;
    let server = Hostile::imap(Fault::None, n).await;
    for mode in [FetchMode::New, FetchMode::Unseen] {
        let mut account = server.account(Duration::from_secs(10));
        account.mode = mode;
        let mut source = open(&account).await.unwrap();
        let (uids, largest) = list_windows(&mut source).await;
        assert_eq!(uids, (1..=n).collect::<Vec<_>>(), "{mode:?}");
        assert!(largest <= LIST_WINDOW as usize, "{mode:?}: {largest}");
        // Continuing from a cursor lists exactly what is above it.
        let cursor = FolderCursor {
            uid_validity: Some(7),
            last_uid: n - 10,
            ..FolderCursor::default()
        };
        if mode == FetchMode::New {
            let l = source.list("INBOX", &cursor).await.unwrap();
            assert_eq!(l.new.len(), 10);
            assert!(source.list_more("INBOX").await.unwrap().is_none());
        }
        source.close().await.unwrap();
    }
}

/// The pipeline over more than one listing window: every window is fetched
/// and committed, the cursor ends at the last UID, and a second run (against
/// the same, now well-behaved server) fetches nothing twice.
#[tokio::test]
async fn the_pipeline_commits_every_window_and_a_rerun_fetches_nothing() {
    use std::sync::Arc;

    use intake::fetch::{Protocol, Secret, Security};
    use intake::pipeline::{Options, Pipeline, Quiet};
    use intake::store::{AccountConfig, BindingRole, MasterKey};
    use intake_tests::databases::{Backend, with_database};

    let n = LIST_WINDOW + 40;
    let server = Hostile::imap(Fault::None, n).await;
    with_database(Backend::Sqlite, |db| async move {
        let key = MasterKey::generate().unwrap();
        let tenant = db.store.ensure_tenant("acme").await.unwrap();
        db.store
            .add_credential(tenant, "box", "alice", &Secret::new("pw"), &key)
            .await
            .unwrap();
        let mut config =
            AccountConfig::new("big", Protocol::Imap, "127.0.0.1", Security::None, "box");
        config.port = Some(server.addr().port());
        db.store.add_account(tenant, &config).await.unwrap();
        intake_tests::add_plugins(
            &db.store,
            tenant,
            &[("exact_match", BindingRole::Matcher, "{}")],
        )
        .await;
        let pipeline = Pipeline::new(
            db.store.clone(),
            Arc::new(intake_tests::runtime()),
            Options {
                batch_messages: 500,
                ..Options::default()
            },
        );
        let first = pipeline
            .run_account("acme", "big", &key, &Quiet)
            .await
            .unwrap();
        assert_eq!(first.fetched, n as usize, "{first:?}");
        let again = pipeline
            .run_account("acme", "big", &key, &Quiet)
            .await
            .unwrap();
        assert_eq!(again.fetched, 0, "{again:?}");
    })
    .await;
}
