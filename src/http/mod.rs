//! kapauth's HTTP/1.1 core (SPEC §10): the only place that parses or writes HTTP framing,
//! for both listeners (`server.rs`) and the forward path to Kapacitor (`client.rs`).
//! Synchronous, blocking, a thread per connection; heads parsed by `httparse` under
//! kapauth's limits (`head.rs`), bodies framed and streamed here (`body.rs`), sockets and
//! TLS in `wire.rs` and `tls.rs`. The rest of kapauth sees a parsed `Request` and answers
//! with a `Response`; it never sees a socket or a byte of framing.

pub mod body;
pub mod client;
pub mod head;
pub mod server;
pub mod tls;
mod wire;

pub use head::{Fields, RequestBody, RequestHead, Version};
pub use server::{Body, Delivered, Handler, Limits, Listener, Request, Response, Source};

/// `Content-Type` of every JSON error the core and the gateway write (SPEC §6).
pub const JSON: &str = "application/json; charset=utf-8";

/// `{"error":"…"}` for one of the core's own messages. They are fixed texts; quotes and
/// backslashes are escaped all the same.
pub fn json_error(message: &str) -> String {
    let mut body = String::with_capacity(message.len() + 12);
    body.push_str("{\"error\":\"");
    for c in message.chars() {
        match c {
            '"' => body.push_str("\\\""),
            '\\' => body.push_str("\\\\"),
            c if (c as u32) < 0x20 => body.push(' '),
            c => body.push(c),
        }
    }
    body.push_str("\"}");
    body
}
