//! POP3 against a scripted hostile server (issue 9): a slow server is cut
//! off, a reply cut short by an unstuffed dot is never handed on (so never
//! committed, so never deleted), and refusals are reported at the right step.

use std::time::{Duration, Instant};

use intake::fetch::check::test_account;
use intake::fetch::diagnosis::FailureClass;
use intake::fetch::{FetchError, FolderCursor, MessageKey, NetError, open};
use intake_tests::hostile::{Fault, Hostile, mail};

#[tokio::test]
async fn a_slow_server_is_cut_off_by_the_exchange_deadline() {
    let server = Hostile::pop3(Fault::Slow, 3).await;
    let clock = Instant::now();
    let e = open(&server.account(Duration::from_secs(2)))
        .await
        .unwrap_err();
    assert!(
        clock.elapsed() < Duration::from_secs(6),
        "{:?}",
        clock.elapsed()
    );
    assert!(
        matches!(e, FetchError::Net(NetError::TooSlow { .. })),
        "{e}"
    );
}

#[tokio::test]
async fn test_settings_keeps_its_ten_second_limit_per_step() {
    let server = Hostile::pop3(Fault::Slow, 3).await;
    let mut account = server.account(Duration::from_secs(60));
    account.timeouts.io = Duration::from_secs(60);
    let clock = Instant::now();
    let report = test_account(&account).await;
    let took = clock.elapsed();
    assert!(took < Duration::from_secs(13), "took {took:?}");
    let last = report.steps.last().unwrap();
    assert!(!last.ok && last.name == "capabilities", "{report:#?}");
}

#[tokio::test]
async fn a_reply_cut_short_by_an_unstuffed_dot_is_never_handed_on() {
    let server = Hostile::pop3(Fault::UnstuffedDot, 8).await;
    let mut account = server.account(Duration::from_secs(5));
    account.keep_on_server = false;
    let mut source = open(&account).await.unwrap();
    let listing = source
        .list("INBOX", &FolderCursor::default())
        .await
        .unwrap();
    let refs: Vec<MessageKey> = listing.new.iter().map(|l| l.message.clone()).collect();
    // Messages 1-5 are fine on their own.
    let first = source.fetch(&refs[..5]).await.unwrap();
    assert_eq!(first[4].raw.as_ref(), mail(5).as_slice());
    // Message 6 arrives short: the whole batch fails, nothing is returned.
    let e = source.fetch(&refs[5..]).await.unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains("LIST announced") && text.contains("message 6"),
        "{text}"
    );
    // The session is out of step: nothing more is sent, so no QUIT, so
    // nothing could be deleted.
    assert!(source.fetch(&refs[6..]).await.is_err());
}

#[tokio::test]
async fn a_uidl_list_mismatch_says_which_message() {
    let server = Hostile::pop3(Fault::ListUidlMismatch, 6).await;
    let mut source = open(&server.account(Duration::from_secs(5))).await.unwrap();
    let e = source
        .list("INBOX", &FolderCursor::default())
        .await
        .unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains("UIDL and LIST disagree") && text.contains("message 7"),
        "{text}"
    );
}

#[tokio::test]
async fn a_mailbox_in_use_is_a_busy_login_step() {
    let server = Hostile::pop3(Fault::LoginRefused, 3).await;
    let report = test_account(&server.account(Duration::from_secs(5))).await;
    let last = report.steps.last().unwrap();
    assert_eq!(last.name, "login", "{report:#?}");
    assert!(last.detail.contains("IN-USE"), "{}", last.detail);
    let e = open(&server.account(Duration::from_secs(5)))
        .await
        .unwrap_err();
    assert_eq!(e.class(), FailureClass::Busy);
}
