//! Per-message cost of the plugin chain, on a typical 20 KB message:
//! parsing, one bare instantiation, and the issue's reference case — a fresh
//! instance each of `exact-match` and `unknown-sender` for a stranger (the
//! matcher has no opinion, so the policy runs too).
//!
//! Needs the reference plugins built for wasm32-wasip2; `bench/plugin-chain`
//! builds them and runs this. `INTAKE_PLUGIN_DIR` overrides where they are.

use std::path::PathBuf;
use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use intake::directory::{MemoryDirectory, Party, PartyKind};
use intake::parse::Origin;
use intake::parse::{self, Envelope};
use intake::plugin::{Binding, CallContext, Chain, PluginRuntime, RuntimeConfig};

fn plugin(name: &str) -> PathBuf {
    let dir = std::env::var_os("INTAKE_PLUGIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../plugins/target/wasm32-wasip2/release")
        });
    let path = dir.join(format!("{name}.wasm"));
    assert!(
        path.exists(),
        "{} missing: run bench/plugin-chain (it builds the plugins)",
        path.display()
    );
    path
}

/// A realistic ~20 KB message: a dozen headers, text and HTML alternatives.
fn typical_message(from: &str) -> Vec<u8> {
    let paragraph = "Thanks for the call yesterday. As discussed, we would like to move forward with \
the annual plan for the operations team, starting next month, and would appreciate a revised quote. ";
    let text: String = paragraph.repeat(45);
    let html = format!("<html><body><p>{}</p></body></html>", paragraph.repeat(55));
    format!(
        "Return-Path: <{from}>\r\nReceived: from mx.example by mx.ourco.example with ESMTPS id 4Xy; Mon, 2 Nov 2026 09:14:03 +0100\r\n\
From: Sam Sender <{from}>\r\nTo: Sales <sales@ourco.example>\r\nCc: ann.lee@acme.example\r\n\
Subject: Re: Annual plan for the operations team\r\nDate: Mon, 02 Nov 2026 09:14:03 +0100\r\n\
Message-ID: <bench.1@sender.example>\r\nIn-Reply-To: <q.1@ourco.example>\r\nReferences: <q.0@ourco.example> <q.1@ourco.example>\r\n\
MIME-Version: 1.0\r\nX-Mailer: Bench 1.0\r\nContent-Type: multipart/alternative; boundary=\"b\"\r\n\r\n\
--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{text}\r\n--b\r\nContent-Type: text/html; charset=utf-8\r\n\r\n{html}\r\n--b--\r\n"
    )
    .into_bytes()
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let runtime = PluginRuntime::new(RuntimeConfig::default()).unwrap();
    let directory = Arc::new(MemoryDirectory::new());
    for i in 0..1000 {
        directory.insert(
            "t",
            Party {
                kind: if i % 3 == 0 {
                    PartyKind::Lead
                } else {
                    PartyKind::Contact
                },
                id: String::new(),
                email: format!("person{i}@company{}.example", i % 50),
                name: Some(format!("Person {i}")),
                company: None,
                external_id: None,
            },
        );
    }
    let envelope = Envelope {
        tenant_id: "t".into(),
        account_id: "a".into(),
        origin: Origin::File("bench".into()),
    };
    let raw = bytes::Bytes::from(typical_message("sam@stranger.example"));
    println!("message size: {} bytes", raw.len());

    let mut group = c.benchmark_group("message");
    group.throughput(Throughput::Bytes(raw.len() as u64));
    group.bench_function("parse 20KB", |b| {
        b.iter(|| parse::parse(raw.clone(), &envelope, parse::DEFAULT_MAX_BODY_BYTES).unwrap())
    });
    group.finish();

    let parsed = parse::parse(raw.clone(), &envelope, parse::DEFAULT_MAX_BODY_BYTES).unwrap();
    let mut exact = Binding::from_file(plugin("exact_match"));
    exact.config = r#"{"ignore": ["sales@ourco.example"]}"#.into();
    let exact = Arc::new(runtime.load(exact).unwrap());
    let policy = Arc::new(
        runtime
            .load(Binding::from_file(plugin("unknown_sender")))
            .unwrap(),
    );

    let call = Arc::new(CallContext {
        tenant_id: "t".into(),
        account_id: "a".into(),
        directory: directory.clone(),
        raw: parsed.raw.clone(),
    });
    let mut group = c.benchmark_group("plugin");
    group.bench_function("instantiate+init exact-match", |b| {
        b.iter(|| {
            rt.block_on(exact.check_init("t", directory.clone()))
                .unwrap()
        })
    });
    group.bench_function("exact-match on 20KB", |b| {
        b.iter(|| rt.block_on(exact.run_matcher(&parsed.view, &call)).unwrap())
    });
    group.finish();

    let chain = Chain::new(vec![exact.clone()], Some(policy)).unwrap();
    let mut group = c.benchmark_group("chain");
    group.bench_function("exact-match + unknown-sender, stranger, 20KB", |b| {
        b.iter(|| rt.block_on(chain.run(&parsed, directory.clone())))
    });
    let known = parse::parse(
        typical_message("person7@company7.example").into(),
        &envelope,
        parse::DEFAULT_MAX_BODY_BYTES,
    )
    .unwrap();
    group.bench_function("exact-match + unknown-sender, known sender, 20KB", |b| {
        b.iter(|| rt.block_on(chain.run(&known, directory.clone())))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
