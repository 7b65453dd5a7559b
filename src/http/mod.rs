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
pub use server::{
    Body, Delivered, Handler, Limits, Listener, Request, Response, Source, client_key,
};

/// `Content-Type` of every JSON error the core and the gateway write (SPEC §6).
pub const JSON: &str = "application/json; charset=utf-8";

/// `{"error":"…"}` as Go's `json.Marshal` writes it: the body of every error kapauth
/// answers itself, from the core and from the gateway.
pub fn json_error(message: &str) -> String {
    format!("{{\"error\":{}}}", json_string(message))
}

/// A JSON string as Go's `encoding/json` writes it: besides `"`, `\` and control
/// characters it escapes `<`, `>`, `&`, U+2028 and U+2029.
pub fn json_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", c as u32))
            }
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_strings_are_escaped_as_go_escapes_them() {
        let cases = [
            ("plain", r#""plain""#),
            ("<>&", r#""\u003c\u003e\u0026""#),
            ("q\"b\\", r#""q\"b\\""#),
            ("\n\r\t\u{1}", r#""\n\r\t\u0001""#),
            ("\u{2028}\u{2029}", r#""\u2028\u2029""#),
            ("é", "\"é\""),
        ];
        for (text, expected) in cases {
            assert_eq!(json_string(text), expected, "{text:?}");
        }
    }
}
