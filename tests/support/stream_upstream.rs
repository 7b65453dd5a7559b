//! An upstream stand-in for Kapacitor's streaming endpoints (`/kapacitor/v1/logs`) in the
//! HTTP core's tests (SPEC §10): it accepts each connection on 127.0.0.1:0, reads the
//! request head, and hands the connection to the test as an `Exchange`. The test writes the
//! response itself, chunk by chunk, from its own thread, so it decides when each byte
//! leaves the upstream: "line 2 is written only after line 1 was read through the gateway"
//! is then an order of statements in the test, not a sleep. Request bodies are not read.
//! It shares `raw_upstream.rs`'s head reader, so a test file includes both. Included by
//! test files with `#[path = "support/stream_upstream.rs"] mod stream_upstream;`.
#![allow(dead_code)]

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::Duration;

/// A running stand-in; it lives until the test process ends.
pub struct StreamUpstream {
    pub addr: SocketAddr,
    exchanges: Receiver<Exchange>,
}

/// One request that reached the stand-in, and the connection to answer it on.
pub struct Exchange {
    pub method: String,
    pub target: String,
    pub headers: Vec<(String, String)>,
    stream: TcpStream,
}

impl StreamUpstream {
    pub fn start() -> StreamUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the stream upstream");
        let addr = listener
            .local_addr()
            .expect("the stream upstream's address");
        let (sender, exchanges) = mpsc::channel();
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let sender = sender.clone();
                thread::spawn(move || {
                    if let Ok(exchange) = Exchange::read(stream) {
                        let _ = sender.send(exchange);
                    }
                });
            }
        });
        StreamUpstream { addr, exchanges }
    }

    /// `http://127.0.0.1:PORT`, for `gateway.upstream`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The next request that reached the stand-in; fails the test after `limit`.
    pub fn next_exchange(&self, limit: Duration) -> Exchange {
        self.exchanges
            .recv_timeout(limit)
            .unwrap_or_else(|_| panic!("no request reached the stream upstream within {limit:?}"))
    }
}

impl Exchange {
    /// Writes `bytes` and flushes; an error means the gateway has closed its side.
    pub fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)?;
        self.stream.flush()
    }

    /// A `200` head announcing a chunked body.
    pub fn send_chunked_head(&mut self) -> io::Result<()> {
        self.send(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nTransfer-Encoding: chunked\r\n\r\n")
    }

    /// One chunk holding `data`.
    pub fn send_chunk(&mut self, data: &[u8]) -> io::Result<()> {
        let mut bytes = format!("{:x}\r\n", data.len()).into_bytes();
        bytes.extend_from_slice(data);
        bytes.extend_from_slice(b"\r\n");
        self.send(&bytes)
    }

    /// The terminating chunk with no trailers.
    pub fn send_last_chunk(&mut self) -> io::Result<()> {
        self.send(b"0\r\n\r\n")
    }

    /// The head up to its empty line, read a byte at a time so no body byte is taken.
    fn read(mut stream: TcpStream) -> io::Result<Exchange> {
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(20)))?;
        stream.set_write_timeout(Some(Duration::from_secs(20)))?;
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            if stream.read(&mut byte)? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            head.push(byte[0]);
        }
        let (method, target, headers) = crate::raw_upstream::head_parts(&head);
        Ok(Exchange {
            method,
            target,
            headers,
            stream,
        })
    }
}
