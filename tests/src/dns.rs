//! A tiny authoritative DNS responder on 127.0.0.1 (UDP) for the discovery
//! tests: it answers SRV and MX queries from a table (no records of the
//! type asked: an empty answer; an unknown name: NXDOMAIN),
//! and never answers names it is told to ignore (a hanging server). The
//! wire format is written by hand (RFC 1035, RFC 2782), so the test does
//! not share a DNS library with the code under test.

use std::collections::{HashMap, HashSet};
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One SRV record: priority, weight, port, target (`.` for "not offered").
#[derive(Debug, Clone)]
pub struct Srv {
    /// Priority.
    pub priority: u16,
    /// Weight.
    pub weight: u16,
    /// Port.
    pub port: u16,
    /// Target host; `.` is the root.
    pub target: String,
}

impl Srv {
    /// A record.
    pub fn new(priority: u16, weight: u16, port: u16, target: &str) -> Srv {
        Srv {
            priority,
            weight,
            port,
            target: target.into(),
        }
    }
}

/// A running responder; stops when dropped.
pub struct DnsResponder {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The names asked, lower case, without the trailing dot, in order.
    asked: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// A record the responder serves.
#[derive(Debug, Clone)]
pub enum Record {
    /// An SRV record.
    Srv(Srv),
    /// An MX record: preference, exchange.
    Mx(u16, String),
}

impl Record {
    fn qtype(&self) -> u16 {
        match self {
            Record::Srv(_) => 33,
            Record::Mx(..) => 15,
        }
    }
}

/// Owner names (`_imaps._tcp.example.com`, `example.com`, no trailing dot)
/// and their records.
pub type Zone = HashMap<String, Vec<Record>>;

impl DnsResponder {
    /// Starts answering from `zone`; queries for names in `ignore` get no
    /// answer at all.
    pub fn start(zone: Zone, ignore: HashSet<String>) -> DnsResponder {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind the DNS responder");
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let addr = socket.local_addr().unwrap();
        let asked = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (asked, stop) = (asked.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut buf = [0u8; 1500];
                while !stop.load(Ordering::Relaxed) {
                    let Ok((n, from)) = socket.recv_from(&mut buf) else {
                        continue;
                    };
                    let Some((name, question_end)) = question(&buf[..n]) else {
                        continue;
                    };
                    asked.lock().unwrap().push(name.clone());
                    if ignore.contains(&name) {
                        continue;
                    }
                    let answer = answer(&buf[..n], question_end, zone.get(&name));
                    let _ = socket.send_to(&answer, from);
                }
            })
        };
        DnsResponder {
            addr,
            asked,
            stop,
            thread: Some(thread),
        }
    }

    /// The names asked so far.
    pub fn asked(&self) -> Vec<String> {
        self.asked.lock().unwrap().clone()
    }
}

impl Drop for DnsResponder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The question's name (lower case, no trailing dot) and where the
/// question section ends (name, type, class).
fn question(packet: &[u8]) -> Option<(String, usize)> {
    if packet.len() < 12 || u16::from_be_bytes([packet[4], packet[5]]) != 1 {
        return None;
    }
    let mut at = 12;
    let mut labels = Vec::new();
    loop {
        let len = usize::from(*packet.get(at)?);
        at += 1;
        if len == 0 {
            break;
        }
        if len > 63 {
            return None;
        }
        labels.push(String::from_utf8_lossy(packet.get(at..at + len)?).to_ascii_lowercase());
        at += len;
    }
    let end = at + 4;
    (packet.len() >= end).then(|| (labels.join("."), end))
}

fn encode_name(name: &str, out: &mut Vec<u8>) {
    for label in name
        .trim_end_matches('.')
        .split('.')
        .filter(|l| !l.is_empty())
    {
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
}

/// The response: the question echoed, the name's records of the type
/// asked as answers; NXDOMAIN when the name has no records at all.
fn answer(query: &[u8], question_end: usize, records: Option<&Vec<Record>>) -> Vec<u8> {
    let qtype = u16::from_be_bytes([query[question_end - 4], query[question_end - 3]]);
    let exists = records.is_some_and(|r| !r.is_empty());
    let records: Vec<&Record> = records
        .map(|r| r.iter().filter(|r| r.qtype() == qtype).collect())
        .unwrap_or_default();
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(&query[0..2]); // id
    let rd = query[2] & 0x01;
    // QR, opcode 0, AA, RD as asked; RA; RCODE 0 or 3 (NXDOMAIN).
    out.push(0x84 | rd);
    out.push(if exists { 0x80 } else { 0x83 });
    out.extend_from_slice(&1u16.to_be_bytes()); // questions
    out.extend_from_slice(&(records.len() as u16).to_be_bytes()); // answers
    out.extend_from_slice(&0u16.to_be_bytes()); // authority
    out.extend_from_slice(&0u16.to_be_bytes()); // additional
    out.extend_from_slice(&query[12..question_end]);
    for r in records {
        out.extend_from_slice(&[0xc0, 0x0c]); // the question's name
        out.extend_from_slice(&r.qtype().to_be_bytes());
        out.extend_from_slice(&1u16.to_be_bytes()); // IN
        out.extend_from_slice(&60u32.to_be_bytes()); // TTL
        let mut rdata = Vec::new();
        match r {
            Record::Srv(srv) => {
                rdata.extend_from_slice(&srv.priority.to_be_bytes());
                rdata.extend_from_slice(&srv.weight.to_be_bytes());
                rdata.extend_from_slice(&srv.port.to_be_bytes());
                encode_name(&srv.target, &mut rdata);
            }
            Record::Mx(preference, exchange) => {
                rdata.extend_from_slice(&preference.to_be_bytes());
                encode_name(exchange, &mut rdata);
            }
        }
        out.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        out.extend_from_slice(&rdata);
    }
    out
}
