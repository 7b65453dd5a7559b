//! Every type that holds a password, token or key, and every line that touches one.
//! Nothing here has a `Display`; each `Debug` prints `***`, so a secret cannot reach a log
//! by accident. Pure code: randomness comes in from the caller.

pub mod base64;
pub mod jwt;
pub mod password;

use std::fmt;

/// A secret taken from the configuration (`shared-secret`, `meta-password`, ...).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SecretText(String);

impl SecretText {
    pub fn new(text: impl Into<String>) -> SecretText {
        SecretText(text.into())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The secret itself, for the one place that must send or key with it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// The username and password of a `Basic` header, read as Go's `http.Request.BasicAuth`
/// reads them (scheme word in any case, one space, standard padded base64, split at the
/// first colon), plus one kapauth rule: the decoded bytes must be UTF-8, since usernames
/// and passwords are text everywhere else in kapauth.
pub fn basic_auth(header: &str) -> Option<(String, password::Password)> {
    const PREFIX: &[u8] = b"Basic ";
    let scheme = header.as_bytes().get(..PREFIX.len())?;
    if !scheme.eq_ignore_ascii_case(PREFIX) {
        return None;
    }
    let encoded = header.get(PREFIX.len()..)?;
    let decoded = String::from_utf8(base64::decode_standard(encoded)?).ok()?;
    let (username, password) = decoded.split_once(':')?;
    Some((
        username.to_owned(),
        password::Password::new(password.to_owned()),
    ))
}

/// `Basic base64(username:password)`, for the meta client's own credentials.
pub fn basic_header(username: &str, password: &SecretText) -> String {
    format!(
        "Basic {}",
        base64::encode_standard(format!("{username}:{}", password.expose()).as_bytes())
    )
}
