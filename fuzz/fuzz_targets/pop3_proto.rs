//! Fuzz target: the bounded POP3 response parser
//! (`intake::fetch::pop3::proto`) fed arbitrary bytes.
//!
//! Run from `fuzz/` with the stable toolchain (see README.md); no nightly
//! and no `RUSTC_BOOTSTRAP` needed:
//!
//! ```text
//! nice cargo fuzz run pop3_proto --sanitizer none \
//!     corpus/pop3_proto seeds/pop3_proto -- -max_total_time=600 -max_len=20000
//! ```
//!
//! Beyond "never panics", it checks the properties the client relies on:
//! every result stays within the caller's bounds, decoding in chunks agrees
//! with decoding at once, and dot-stuffing then decoding gives back the body.
#![no_main]

use intake::fetch::pop3::proto::{self, Capabilities, MultiLine, ProtoError};
use libfuzzer_sys::fuzz_target;

/// A line limit small enough for the fuzzer to cross often.
const MAX_LINE: usize = 64;

/// RFC 1939 dot-stuffing, written independently of the decoder.
fn stuff(body: &[u8]) -> Vec<u8> {
    let mut wire = Vec::with_capacity(body.len() + 8);
    for line in body.split_inclusive(|&b| b == b'\n') {
        if line.first() == Some(&b'.') {
            wire.push(b'.');
        }
        wire.extend_from_slice(line);
    }
    wire.extend_from_slice(b".\r\n");
    wire
}

fn check_lines(input: &[u8]) {
    match proto::split_line(input, MAX_LINE) {
        Ok(Some((line, used))) => {
            assert!(used <= MAX_LINE && used <= input.len() && line.len() < used);
            assert!(!line.contains(&b'\n'));
        }
        Ok(None) => assert!(input.len() < MAX_LINE && !input.contains(&b'\n')),
        Err(e) => assert_eq!(e, ProtoError::LineTooLong { limit: MAX_LINE }),
    }
    for line in input.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if let Ok(reply) = proto::parse_status(line) {
            assert!(
                reply.text.len() <= 3 * line.len(),
                "lossy UTF-8 grows at most threefold"
            );
        }
        let _ = proto::parse_auth_reply(line);
        let _ = proto::parse_stat(line);
        if let Ok(entry) = proto::parse_scan_line(line) {
            assert!(entry.number >= 1);
        }
        if let Ok(entry) = proto::parse_uidl_line(line) {
            assert!(entry.number >= 1);
            assert!((1..=proto::MAX_UIDL_LEN).contains(&entry.uidl.len()));
            assert!(entry.uidl.bytes().all(|b| (0x21..=0x7e).contains(&b)));
        }
    }
}

fn check_multiline(input: &[u8], limit: usize, chunk: usize) {
    let whole = proto::decode_multiline(input, limit, Some(MAX_LINE));
    let mut decoder = MultiLine::new(limit).with_max_line(MAX_LINE);
    let mut used = 0;
    let mut chunked: Result<bool, ProtoError> = Ok(false);
    for piece in input.chunks(chunk) {
        match decoder.feed(piece) {
            Ok(fed) => {
                assert!(fed.consumed <= piece.len());
                assert!(
                    fed.done || fed.consumed == piece.len(),
                    "an unfinished body uses all input"
                );
                assert!(decoder.body().len() <= limit);
                used += fed.consumed;
                if fed.done {
                    chunked = Ok(true);
                    break;
                }
            }
            Err(e) => {
                chunked = Err(e);
                break;
            }
        }
    }
    match (whole, chunked) {
        (Ok(Some((body, n))), Ok(true)) => {
            assert!(body.len() <= limit && n <= input.len());
            assert_eq!(n, used);
            assert_eq!(body, decoder.into_body());
        }
        (Ok(None), Ok(false)) => assert_eq!(used, input.len()),
        // Which limit trips first can depend on where chunks end.
        (Err(_), Err(_)) => {}
        (whole, chunked) => panic!("whole and chunked decoding disagree: {whole:?} / {chunked:?}"),
    }
}

fn check_roundtrip(input: &[u8]) {
    let mut body = input.to_vec();
    if !body.is_empty() && !body.ends_with(b"\n") {
        body.extend_from_slice(b"\r\n");
    }
    let wire = stuff(&body);
    let (decoded, used) = proto::decode_multiline(&wire, body.len(), None)
        .expect("within the limit")
        .expect("terminated");
    assert_eq!(decoded, body);
    assert_eq!(used, wire.len());
}

fn check_listings(input: &[u8]) {
    if let Ok(caps) = Capabilities::parse(input) {
        assert!(caps.names().count() <= input.len());
    }
    if let Ok(list) = proto::parse_scan_listing(input) {
        let mut numbers: Vec<u32> = list.iter().map(|e| e.number).collect();
        numbers.sort_unstable();
        numbers.dedup();
        assert_eq!(numbers.len(), list.len(), "numbers are unique");
    }
    if let Ok(ids) = proto::parse_uidl_listing(input) {
        let mut uidls: Vec<&str> = ids.iter().map(|e| e.uidl.as_str()).collect();
        uidls.sort_unstable();
        uidls.dedup();
        assert_eq!(uidls.len(), ids.len(), "unique-ids are unique");
    }
}

fuzz_target!(|data: &[u8]| {
    // The first byte picks the chunk size and the body limit, so the
    // fuzzer explores the boundaries too.
    let Some((&knob, input)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(knob % 16) + 1;
    let limit = usize::from(knob) * 2;
    check_lines(input);
    check_multiline(input, limit, chunk);
    check_roundtrip(input);
    check_listings(input);
});
