//! POP3 retrieval against a real Dovecot on loopback: every security mode,
//! credentials, STLS refusal, keep-a-copy re-runs that ingest nothing twice,
//! deletion only for acknowledged messages and only at a clean QUIT, a
//! connection cut mid-RETR, size limits and the proxy path.

use std::collections::BTreeSet;

use intake::fetch::{
    Acknowledge, FetchError, FolderCursor, MessageKey, NetError, Protocol, Secret, Security, open,
};
use intake_tests::servers::{CuttingRelay, Dovecot, DovecotOptions, Socks5, USER, message};

fn uidls(listing: &intake::fetch::Listing) -> BTreeSet<String> {
    listing
        .new
        .iter()
        .map(|l| match &l.message {
            MessageKey::Pop3 { uidl, .. } => uidl.clone(),
            other => panic!("{other:?}"),
        })
        .collect()
}

#[tokio::test]
async fn fetches_exact_bytes_in_every_security_mode() {
    let server = Dovecot::start();
    let sent: Vec<Vec<u8>> = (0..3).map(|n| message(n, 3_000 + n * 700)).collect();
    for raw in &sent {
        server.deliver(USER, "INBOX", raw, false);
    }
    for security in [Security::None, Security::Starttls, Security::Tls] {
        let account = server.account(Protocol::Pop3, security);
        let mut source = open(&account)
            .await
            .unwrap_or_else(|e| panic!("{security:?}: {e}\n{}", server.log()));
        assert_eq!(source.folders(), ["INBOX"]);
        let listing = source
            .list("INBOX", &FolderCursor::default())
            .await
            .unwrap();
        assert_eq!(listing.new.len(), 3, "{security:?}");
        let refs: Vec<MessageKey> = listing.new.iter().map(|l| l.message.clone()).collect();
        let fetched = source.fetch(&refs).await.unwrap();
        let mut got: Vec<Vec<u8>> = fetched.iter().map(|f| f.raw.to_vec()).collect();
        let mut want = sent.clone();
        got.sort();
        want.sort();
        assert_eq!(
            got, want,
            "exact bytes (dot-stuffing undone) over {security:?}"
        );
        source.close().await.unwrap();
    }
    assert_eq!(
        server.files(USER, "INBOX").len(),
        3,
        "keep-copy default: nothing deleted"
    );
}

#[tokio::test]
async fn wrong_password_and_missing_stls() {
    let server = Dovecot::start();
    let mut account = server.account(Protocol::Pop3, Security::Tls);
    account.password = Secret::new("wrong");
    assert!(matches!(open(&account).await, Err(FetchError::Auth(_))));

    let plain_only = Dovecot::start_with(DovecotOptions {
        tls: false,
        ..DovecotOptions::default()
    });
    let account = plain_only.account(Protocol::Pop3, Security::Starttls);
    match open(&account).await {
        Err(FetchError::Net(NetError::StartTlsNotOffered { command })) => {
            assert_eq!(command, "STLS")
        }
        other => panic!("must never fall back to plain text: {other:?}"),
    }
}

#[tokio::test]
async fn self_signed_certificate_refused_by_default() {
    let server = Dovecot::start();
    let mut account = server.account(Protocol::Pop3, Security::Tls);
    account.ca_file = None;
    assert!(matches!(
        open(&account).await,
        Err(FetchError::Net(NetError::Certificate { .. }))
    ));
    account.verify_certificate = false;
    open(&account).await.unwrap().close().await.unwrap();
}

#[tokio::test]
async fn keep_copy_rerun_fetches_nothing_new() {
    let server = Dovecot::start();
    for n in 0..3 {
        server.deliver(USER, "INBOX", &message(n, 500), false);
    }
    let account = server.account(Protocol::Pop3, Security::None);
    let mut source = open(&account).await.unwrap();
    let first = source
        .list("INBOX", &FolderCursor::default())
        .await
        .unwrap();
    source.close().await.unwrap();
    let seen = uidls(&first);
    assert_eq!(seen.len(), 3);

    let cursor = FolderCursor {
        seen_uidls: seen.clone(),
        ..FolderCursor::default()
    };
    let mut source = open(&account).await.unwrap();
    assert!(
        source.list("INBOX", &cursor).await.unwrap().new.is_empty(),
        "nothing is ingested twice"
    );
    source.close().await.unwrap();

    server.deliver(USER, "INBOX", &message(99, 500), false);
    let mut source = open(&account).await.unwrap();
    let again = source.list("INBOX", &cursor).await.unwrap();
    assert_eq!(again.new.len(), 1);
    assert!(uidls(&again).is_disjoint(&seen));
    source.close().await.unwrap();
}

#[tokio::test]
async fn deletes_only_acknowledged_messages_and_only_at_quit() {
    let server = Dovecot::start();
    for n in 0..3 {
        server.deliver(USER, "INBOX", &message(n, 500), false);
    }
    let mut account = server.account(Protocol::Pop3, Security::None);
    account.keep_on_server = false;

    // DELE without a clean QUIT: POP3 rolls the deletion back.
    let mut source = open(&account).await.unwrap();
    let listing = source
        .list("INBOX", &FolderCursor::default())
        .await
        .unwrap();
    source
        .acknowledge(&[(listing.new[0].message.clone(), Acknowledge::Delete)])
        .await
        .unwrap();
    drop(source);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(server.files(USER, "INBOX").len(), 3, "no QUIT, no deletion");

    // With QUIT, only the acknowledged one goes.
    let mut source = open(&account).await.unwrap();
    let listing = source
        .list("INBOX", &FolderCursor::default())
        .await
        .unwrap();
    source
        .acknowledge(&[(listing.new[0].message.clone(), Acknowledge::Delete)])
        .await
        .unwrap();
    source.close().await.unwrap();
    assert_eq!(server.files(USER, "INBOX").len(), 2);

    // keep-on-server: a delete is not carried out.
    account.keep_on_server = true;
    let mut source = open(&account).await.unwrap();
    let listing = source
        .list("INBOX", &FolderCursor::default())
        .await
        .unwrap();
    source
        .acknowledge(&[(listing.new[0].message.clone(), Acknowledge::Delete)])
        .await
        .unwrap();
    source.close().await.unwrap();
    assert_eq!(server.files(USER, "INBOX").len(), 2);
}

#[tokio::test]
async fn connection_lost_mid_retr_is_an_error_and_nothing_is_deleted() {
    let server = Dovecot::start();
    for n in 0..5 {
        server.deliver(USER, "INBOX", &message(n, 40_000), false);
    }
    let relay = CuttingRelay::start(server.pop3_port, 70_000).await;
    let mut account = server.account(Protocol::Pop3, Security::None);
    account.port = Some(relay.port);
    account.keep_on_server = false;
    let mut source = open(&account).await.unwrap();
    let listing = source
        .list("INBOX", &FolderCursor::default())
        .await
        .unwrap();
    let refs: Vec<MessageKey> = listing.new.iter().map(|l| l.message.clone()).collect();
    match source.fetch(&refs).await {
        Ok(batch) => panic!(
            "a cut connection returned {} messages as if complete",
            batch.len()
        ),
        Err(e) => assert!(
            matches!(
                e,
                FetchError::Incomplete { .. } | FetchError::Net(_) | FetchError::Protocol(_)
            ),
            "{e:?}"
        ),
    }
    drop(source);
    assert_eq!(server.files(USER, "INBOX").len(), 5);
}

#[tokio::test]
async fn size_limit_and_proxy() {
    let server = Dovecot::start();
    server.deliver(USER, "INBOX", &message(1, 1_000), false);
    server.deliver(USER, "INBOX", &message(2, 150_000), false);
    let proxy = Socks5::start(Some(("pu", "pp")));
    let mut account = server.account(Protocol::Pop3, Security::Tls);
    account.max_message_bytes = 100_000;
    account.proxy = Some(proxy.settings());
    let mut source = open(&account).await.unwrap();
    let listing = source
        .list("INBOX", &FolderCursor::default())
        .await
        .unwrap();
    assert_eq!((listing.new.len(), listing.too_large.len()), (1, 1));
    assert!(matches!(
        source.list("Archive", &FolderCursor::default()).await,
        Err(FetchError::NoSuchFolder { .. })
    ));
    source.close().await.unwrap();
}
