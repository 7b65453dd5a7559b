//! A DNS server standing in for a bare host's resolver (`bare_host.rs`): UDP on port 53
//! of a loopback address (`/etc/resolv.conf` names no port), answering one name's A query
//! with one address, its AAAA query with no address (NOERROR, as a zone without IPv6
//! does), and any other name with NXDOMAIN. Enough of RFC 1035 §4.1 for the C library's
//! stub resolver; it counts the queries it answered for the name. Binding port 53 needs
//! root. Included by test files with `#[path = "support/dns.rs"] mod dns;`.
#![allow(dead_code)]

use std::io;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;

const TYPE_A: u16 = 1;
const RCODE_NXDOMAIN: u8 = 3;

/// A running DNS stand-in. It lives until the test process ends.
pub struct Dns {
    pub addr: SocketAddr,
    answered: Arc<AtomicUsize>,
}

impl Dns {
    /// Serves `name` → `address` on `listen`:53.
    pub fn start(listen: Ipv4Addr, name: &str, address: Ipv4Addr) -> io::Result<Dns> {
        let socket = UdpSocket::bind((listen, 53))?;
        let addr = socket.local_addr()?;
        let answered = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&answered);
        let name = name.to_ascii_lowercase();
        thread::spawn(move || {
            let mut buffer = [0u8; 512];
            loop {
                let Ok((length, peer)) = socket.recv_from(&mut buffer) else {
                    continue;
                };
                if let Some((reply, ours)) = answer(&buffer[..length], &name, address) {
                    if ours {
                        counter.fetch_add(1, Ordering::SeqCst);
                    }
                    let _ = socket.send_to(&reply, peer);
                }
            }
        });
        Ok(Dns { addr, answered })
    }

    /// Queries for the served name answered so far (A and AAAA each count).
    pub fn answered(&self) -> usize {
        self.answered.load(Ordering::SeqCst)
    }
}

/// The reply to one query and whether it asked for the served name; `None` for what is
/// not a one-question query.
fn answer(query: &[u8], name: &str, address: Ipv4Addr) -> Option<(Vec<u8>, bool)> {
    if query.len() < 12 || query[4..6] != [0, 1] {
        return None;
    }
    // The question: length-prefixed labels up to a zero byte, then type and class.
    let mut labels = Vec::new();
    let mut at = 12;
    loop {
        let length = usize::from(*query.get(at)?);
        at += 1;
        if length == 0 {
            break;
        }
        if length > 63 {
            return None;
        }
        labels.push(String::from_utf8_lossy(query.get(at..at + length)?).to_ascii_lowercase());
        at += length;
    }
    let question_end = at + 4;
    let kind = u16::from_be_bytes([*query.get(at)?, *query.get(at + 1)?]);
    let ours = labels.join(".") == name;
    let records = u16::from(ours && kind == TYPE_A);
    let mut reply = Vec::with_capacity(question_end + 16);
    reply.extend_from_slice(&query[0..2]);
    // A response, recursion desired and available; NXDOMAIN for a name it does not serve.
    reply.extend_from_slice(&[0x81, 0x80 | if ours { 0 } else { RCODE_NXDOMAIN }]);
    reply.extend_from_slice(&[0, 1]);
    reply.extend_from_slice(&records.to_be_bytes());
    reply.extend_from_slice(&[0, 0, 0, 0]);
    reply.extend_from_slice(query.get(12..question_end)?);
    if records == 1 {
        // The name by a pointer to the question, type A, class IN, TTL 60, 4 bytes.
        reply.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]);
        reply.extend_from_slice(&address.octets());
    }
    Some((reply, ours))
}
