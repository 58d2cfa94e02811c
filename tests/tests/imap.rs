//! IMAP retrieval against a real Dovecot on loopback: every security mode,
//! credentials and certificates, new vs unseen, UIDVALIDITY changes, a
//! connection cut mid-FETCH, size limits, server actions and the proxy path.

use intake::fetch::{
    Acknowledge, CursorAdvance, FetchError, FetchMode, FolderCursor, MessageKey, NetError,
    Protocol, Security, open,
};
use intake_tests::servers::{CuttingRelay, Dovecot, DovecotOptions, Socks5, USER, message};

fn uids(listing: &intake::fetch::Listing) -> Vec<u32> {
    listing
        .new
        .iter()
        .map(|l| match l.message {
            MessageKey::Imap { uid, .. } => uid,
            _ => unreachable!(),
        })
        .collect()
}

#[tokio::test]
async fn fetches_in_every_security_mode_without_changing_flags() {
    let server = Dovecot::start();
    let sent: Vec<Vec<u8>> = (0..3).map(|n| message(n, 2_000 + n * 500)).collect();
    for raw in &sent {
        server.deliver(USER, "INBOX", raw, false);
    }
    for security in [Security::None, Security::Starttls, Security::Tls] {
        let account = server.account(Protocol::Imap, security);
        let mut source = open(&account)
            .await
            .unwrap_or_else(|e| panic!("{security:?}: {e}\n{}", server.log()));
        let listing = source
            .list("INBOX", &FolderCursor::default())
            .await
            .unwrap();
        assert_eq!(listing.new.len(), 3, "{security:?}");
        assert!(listing.uid_validity.is_some());
        let refs: Vec<MessageKey> = listing.new.iter().map(|l| l.message.clone()).collect();
        let fetched = source.fetch(&refs).await.unwrap();
        let mut got: Vec<Vec<u8>> = fetched.iter().map(|f| f.raw.to_vec()).collect();
        let mut want = sent.clone();
        got.sort();
        want.sort();
        assert_eq!(got, want, "exact bytes over {security:?}");
        for (l, f) in listing.new.iter().zip(&fetched) {
            assert_eq!(l.size, f.raw.len() as u64);
        }
        source.close().await.unwrap();
    }
    // BODY.PEEK[]: nothing was marked seen.
    assert!(server.files(USER, "INBOX").iter().all(|(_, seen)| !seen));
}

#[tokio::test]
async fn wrong_password_is_an_authentication_error() {
    let server = Dovecot::start();
    let mut account = server.account(Protocol::Imap, Security::Tls);
    account.password = intake::fetch::Secret::new("wrong");
    match open(&account).await {
        Err(FetchError::Auth(m)) => assert!(m.to_lowercase().contains("auth"), "{m}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn certificates_are_verified_unless_explicitly_skipped() {
    let server = Dovecot::start();
    let mut account = server.account(Protocol::Imap, Security::Tls);
    account.ca_file = None;
    match open(&account).await {
        Err(FetchError::Net(NetError::Certificate {
            reason, problem, ..
        })) => {
            assert_eq!(
                problem,
                intake::fetch::net::CertificateProblem::UnknownIssuer
            );
            assert!(
                reason.contains("not issued by a certificate authority"),
                "{reason}"
            )
        }
        other => panic!("private CA must be refused by default: {other:?}"),
    }
    // STARTTLS is held to the same standard.
    let mut starttls = server.account(Protocol::Imap, Security::Starttls);
    starttls.ca_file = None;
    assert!(matches!(
        open(&starttls).await,
        Err(FetchError::Net(NetError::Certificate { .. }))
    ));
    // Trusting the CA file works…
    account.ca_file = Some(server.certs.ca_pem.clone());
    open(&account).await.unwrap().close().await.unwrap();
    // …and so does the explicit skip.
    account.ca_file = None;
    account.verify_certificate = false;
    open(&account).await.unwrap().close().await.unwrap();
}

#[tokio::test]
async fn starttls_not_offered_is_refused() {
    let server = Dovecot::start_with(DovecotOptions {
        tls: false,
        ..DovecotOptions::default()
    });
    let account = server.account(Protocol::Imap, Security::Starttls);
    match open(&account).await {
        Err(FetchError::Net(NetError::StartTlsNotOffered { command })) => {
            assert_eq!(command, "STARTTLS")
        }
        other => panic!("must never fall back to plain text: {other:?}"),
    }
}

#[tokio::test]
async fn new_and_unseen_modes() {
    let server = Dovecot::start();
    server.deliver(USER, "INBOX", &message(1, 500), true);
    server.deliver(USER, "INBOX", &message(2, 500), false);
    server.deliver(USER, "INBOX", &message(3, 500), false);
    let mut account = server.account(Protocol::Imap, Security::None);
    let mut source = open(&account).await.unwrap();
    let all = source
        .list("INBOX", &FolderCursor::default())
        .await
        .unwrap();
    assert_eq!(uids(&all).len(), 3);
    let first = uids(&all)[0];
    let cursor = FolderCursor {
        uid_validity: all.uid_validity,
        last_uid: first,
        ..FolderCursor::default()
    };
    assert_eq!(
        uids(&source.list("INBOX", &cursor).await.unwrap()),
        &uids(&all)[1..]
    );
    // Above the highest UID: `n:*` returns the last message; it must not be
    // listed again.
    let top = FolderCursor {
        uid_validity: all.uid_validity,
        last_uid: *uids(&all).last().unwrap(),
        ..FolderCursor::default()
    };
    assert!(source.list("INBOX", &top).await.unwrap().new.is_empty());
    source.close().await.unwrap();

    account.mode = FetchMode::Unseen;
    let mut source = open(&account).await.unwrap();
    let unseen = source
        .list("INBOX", &FolderCursor::default())
        .await
        .unwrap();
    assert_eq!(unseen.new.len(), 2);
    source.close().await.unwrap();
}

#[tokio::test]
async fn uid_validity_change_is_detected_and_the_folder_relisted() {
    let server = Dovecot::start();
    for n in 0..3 {
        server.deliver(USER, "INBOX", &message(n, 400), false);
    }
    let account = server.account(Protocol::Imap, Security::None);
    let mut source = open(&account).await.unwrap();
    let first = source
        .list("INBOX", &FolderCursor::default())
        .await
        .unwrap();
    source.close().await.unwrap();
    let cursor = FolderCursor {
        uid_validity: first.uid_validity,
        last_uid: *uids(&first).last().unwrap(),
        ..Default::default()
    };

    let new_validity = first.uid_validity.unwrap().wrapping_add(1000);
    server.reset_uid_validity(USER, "INBOX", new_validity);
    let mut source = open(&account).await.unwrap();
    let again = source.list("INBOX", &cursor).await.unwrap();
    assert!(again.uid_validity_changed);
    assert_eq!(again.uid_validity, Some(new_validity));
    assert_eq!(again.new.len(), 3, "the whole folder is listed again");
    // Acting on UIDs of the old validity is refused, never misapplied.
    let stale = MessageKey::Imap {
        folder: "INBOX".into(),
        uid_validity: first.uid_validity.unwrap(),
        uid: 1,
    };
    assert!(
        source
            .acknowledge(&[(stale, Acknowledge::MarkSeen)])
            .await
            .is_err()
    );
    source.close().await.unwrap();
}

#[tokio::test]
async fn connection_lost_mid_fetch_is_an_error_and_nothing_is_acknowledged() {
    let server = Dovecot::start();
    for n in 0..6 {
        server.deliver(USER, "INBOX", &message(n, 40_000), false);
    }
    // Greeting, login and listing are a few KB; the cut lands inside the
    // second or third message body.
    let relay = CuttingRelay::start(server.imap_port, 90_000).await;
    let mut account = server.account(Protocol::Imap, Security::None);
    account.port = Some(relay.port);
    let mut source = open(&account).await.unwrap();
    let listing = source
        .list("INBOX", &FolderCursor::default())
        .await
        .unwrap();
    assert_eq!(listing.new.len(), 6);
    let refs: Vec<MessageKey> = listing.new.iter().map(|l| l.message.clone()).collect();
    match source.fetch(&refs).await {
        Err(FetchError::Incomplete {
            received,
            expected: 6,
            ..
        }) => assert!(received < 6),
        Err(FetchError::Net(_)) | Err(FetchError::Protocol(_)) => {}
        Ok(batch) => panic!(
            "a cut connection returned {} messages as if complete",
            batch.len()
        ),
        Err(other) => panic!("{other:?}"),
    }
    // Nothing was flagged or deleted on the server.
    let files = server.files(USER, "INBOX");
    assert_eq!(files.len(), 6);
    assert!(files.iter().all(|(_, seen)| !seen));
}

#[tokio::test]
async fn oversized_messages_are_listed_as_skipped() {
    let server = Dovecot::start();
    server.deliver(USER, "INBOX", &message(1, 1_000), false);
    server.deliver(USER, "INBOX", &message(2, 200_000), false);
    let mut account = server.account(Protocol::Imap, Security::None);
    account.max_message_bytes = 100_000;
    let mut source = open(&account).await.unwrap();
    let listing = source
        .list("INBOX", &FolderCursor::default())
        .await
        .unwrap();
    assert_eq!(listing.new.len(), 1);
    assert_eq!(listing.too_large.len(), 1);
    assert!(listing.too_large[0].size > 200_000);
    // Once the smaller one is committed, the cursor may pass the large one.
    assert_eq!(
        listing.skip_to,
        Some(CursorAdvance {
            folder: "INBOX".into(),
            uid_validity: listing.uid_validity.unwrap(),
            last_uid: 2,
        })
    );
    source.close().await.unwrap();
}

#[tokio::test]
async fn first_sync_count_keeps_the_newest_and_skips_past_the_rest() {
    let server = Dovecot::start();
    for n in 1..=5 {
        server.deliver(USER, "INBOX", &message(n, 300), false);
    }
    let mut account = server.account(Protocol::Imap, Security::None);
    account.first_sync_max_messages = Some(2);
    let mut source = open(&account).await.unwrap();
    let first = source
        .list("INBOX", &FolderCursor::default())
        .await
        .unwrap();
    assert_eq!(uids(&first), [4, 5], "only the newest two");
    let validity = first.uid_validity.unwrap();
    assert_eq!(
        first.skip_to,
        Some(CursorAdvance {
            folder: "INBOX".into(),
            uid_validity: validity,
            last_uid: 3,
        }),
        "past the older three"
    );
    assert!(source.list_more("INBOX").await.unwrap().is_none());
    // After the first sync the count no longer applies.
    let cursor = FolderCursor {
        uid_validity: Some(validity),
        last_uid: 1,
        ..FolderCursor::default()
    };
    let later = source.list("INBOX", &cursor).await.unwrap();
    assert_eq!(uids(&later), [2, 3, 4, 5]);
    assert_eq!(later.skip_to, None);
    source.close().await.unwrap();
}

#[tokio::test]
async fn server_actions_mark_seen_move_and_delete() {
    let server = Dovecot::start();
    for n in 0..4 {
        server.deliver(USER, "INBOX", &message(n, 300), false);
    }
    server.maildir(USER, "Archive");
    std::fs::write(
        server
            .maildir(USER, "INBOX")
            .parent()
            .unwrap()
            .join(USER)
            .join("subscriptions"),
        "Archive\n",
    )
    .ok();
    let mut account = server.account(Protocol::Imap, Security::None);
    account.keep_on_server = false;
    let mut source = open(&account).await.unwrap();
    let listing = source
        .list("INBOX", &FolderCursor::default())
        .await
        .unwrap();
    let r: Vec<MessageKey> = listing.new.iter().map(|l| l.message.clone()).collect();
    source
        .acknowledge(&[
            (r[0].clone(), Acknowledge::MarkSeen),
            (r[1].clone(), Acknowledge::Delete),
            (r[2].clone(), Acknowledge::MoveTo("Archive".into())),
            (r[3].clone(), Acknowledge::Leave),
        ])
        .await
        .unwrap();
    source.close().await.unwrap();
    let inbox = server.files(USER, "INBOX");
    assert_eq!(inbox.len(), 2, "{inbox:?}");
    assert_eq!(inbox.iter().filter(|(_, seen)| *seen).count(), 1);
    assert_eq!(server.files(USER, "Archive").len(), 1);

    // keep-on-server: a delete is not carried out.
    account.keep_on_server = true;
    let mut source = open(&account).await.unwrap();
    let listing = source
        .list("INBOX", &FolderCursor::default())
        .await
        .unwrap();
    let r = listing.new[0].message.clone();
    source
        .acknowledge(&[(r, Acknowledge::Delete)])
        .await
        .unwrap();
    source.close().await.unwrap();
    assert_eq!(server.files(USER, "INBOX").len(), 2);
}

#[tokio::test]
async fn folders_other_than_inbox_and_missing_ones() {
    let server = Dovecot::start();
    server.deliver(USER, "Leads", &message(9, 300), false);
    let account = server.account(Protocol::Imap, Security::None);
    let mut source = open(&account).await.unwrap();
    assert_eq!(
        source
            .list("Leads", &FolderCursor::default())
            .await
            .unwrap()
            .new
            .len(),
        1
    );
    match source.list("Nope", &FolderCursor::default()).await {
        Err(FetchError::NoSuchFolder { folder, .. }) => assert_eq!(folder, "Nope"),
        other => panic!("{other:?}"),
    }
    source.close().await.unwrap();
}

#[tokio::test]
async fn through_a_socks5_proxy_with_and_without_auth() {
    let server = Dovecot::start();
    server.deliver(USER, "INBOX", &message(1, 1_000), false);
    for auth in [None, Some(("proxyuser", "proxypass"))] {
        let proxy = Socks5::start(auth);
        let mut account = server.account(Protocol::Imap, Security::Tls);
        account.proxy = Some(proxy.settings());
        let mut source = open(&account)
            .await
            .unwrap_or_else(|e| panic!("{auth:?}: {e}"));
        assert_eq!(
            source
                .list("INBOX", &FolderCursor::default())
                .await
                .unwrap()
                .new
                .len(),
            1
        );
        source.close().await.unwrap();
    }
    // Wrong proxy credentials are a proxy error.
    let proxy = Socks5::start(Some(("u", "p")));
    let mut account = server.account(Protocol::Imap, Security::Tls);
    let mut settings = proxy.settings();
    settings.password = Some(intake::fetch::Secret::new("nope"));
    account.proxy = Some(settings);
    assert!(matches!(
        open(&account).await,
        Err(FetchError::Net(NetError::Proxy { .. }))
    ));
}

#[tokio::test]
async fn first_sync_since_skips_older_mail() {
    let server = Dovecot::start();
    let old = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_600_000_000); // 2020
    server.deliver_at(USER, "INBOX", &message(1, 300), false, old);
    server.deliver_at(USER, "INBOX", &message(2, 300), false, old);
    server.deliver(USER, "INBOX", &message(3, 300), false);
    server.deliver(USER, "INBOX", &message(4, 300), false);
    let mut account = server.account(Protocol::Imap, Security::None);
    account.first_sync_since = Some(chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap()); // 2023
    let mut source = open(&account).await.unwrap();
    let first = source
        .list("INBOX", &FolderCursor::default())
        .await
        .unwrap();
    assert_eq!(first.new.len(), 2, "only mail since the day");
    // After the first sync the cursor rules: new mail is listed whatever the
    // limit, old mail is never listed again.
    let cursor = FolderCursor {
        uid_validity: first.uid_validity,
        last_uid: *uids(&first).last().unwrap(),
        ..Default::default()
    };
    source.close().await.unwrap();
    server.deliver(USER, "INBOX", &message(5, 300), false);
    let mut source = open(&account).await.unwrap();
    assert_eq!(source.list("INBOX", &cursor).await.unwrap().new.len(), 1);
    source.close().await.unwrap();
}
