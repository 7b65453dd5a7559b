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

/// The credentials kapauth shows a meta API (SPEC §4), chosen once from the `[auth]`
/// keys: the HS512 JWT of `meta-internal-shared-secret` when it is set, else Basic
/// `meta-username:meta-password` when a username is set, else none. Its `Debug` names the
/// kind and the username only.
pub enum MetaCredentials {
    None,
    Basic { username: String, header: String },
    Jwt(jwt::Secret),
}

impl MetaCredentials {
    pub fn new(username: &str, password: &SecretText, internal_secret: &SecretText) -> Self {
        if !internal_secret.is_empty() {
            MetaCredentials::Jwt(jwt::Secret::new(internal_secret.expose().as_bytes()))
        } else if !username.is_empty() {
            MetaCredentials::Basic {
                username: username.to_string(),
                header: basic_header(username, password),
            }
        } else {
            MetaCredentials::None
        }
    }

    /// The `Authorization` value of a request sent at `now` (seconds since the Unix
    /// epoch): a fresh token each time, since it expires five minutes after `now`.
    pub fn authorization(&self, now: u64) -> Option<String> {
        match self {
            MetaCredentials::None => None,
            MetaCredentials::Basic { header, .. } => Some(header.clone()),
            MetaCredentials::Jwt(secret) => Some(format!(
                "Bearer {}",
                jwt::sign_hs512(
                    &serde_json::json!({"username": "", "exp": now + 300}),
                    secret
                )
            )),
        }
    }
}

impl fmt::Debug for MetaCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MetaCredentials::None => f.write_str("None"),
            MetaCredentials::Basic { username, .. } => write!(f, "Basic({username:?}, ***)"),
            MetaCredentials::Jwt(_) => f.write_str("Jwt(***)"),
        }
    }
}

/// `Basic base64(username:password)`, for the meta client's own credentials.
pub fn basic_header(username: &str, password: &SecretText) -> String {
    format!(
        "Basic {}",
        base64::encode_standard(format!("{username}:{}", password.expose()).as_bytes())
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::jwt::{Token, verify};

    const NOW: u64 = 1_700_000_000;

    /// The `Authorization` value the `[auth]` keys give; a token is checked by verifying it
    /// and comparing its claims, since its bytes are the signer's.
    fn check(username: &str, password: &str, internal_secret: &str, expected: Option<&str>) {
        let credentials = MetaCredentials::new(
            username,
            &SecretText::new(password),
            &SecretText::new(internal_secret),
        );
        let authorization = credentials.authorization(NOW);
        match (authorization.as_deref(), expected) {
            (Some(value), Some("jwt")) => {
                let token = value.strip_prefix("Bearer ").expect("a Bearer value");
                let claims = verify(
                    &Token::new(token.to_string()),
                    &jwt::Secret::new(internal_secret.as_bytes()),
                    NOW as i64,
                )
                .expect("a token signed with the internal secret");
                assert_eq!(
                    serde_json::Value::Object(claims),
                    serde_json::json!({"username": "", "exp": NOW + 300})
                );
            }
            (actual, expected) => assert_eq!(actual, expected),
        }
    }

    #[test]
    fn meta_credentials_follow_the_auth_keys_in_spec_order() {
        check("", "", "", None);
        check("", "ignored-without-a-username", "", None);
        check("admin", "changeit", "", Some("Basic YWRtaW46Y2hhbmdlaXQ="));
        check("admin", "", "", Some("Basic YWRtaW46"));
        check("admin", "changeit", "s3cret", Some("jwt"));
        check("", "", "s3cret", Some("jwt"));
    }

    #[test]
    fn meta_credentials_debug_shows_no_secret() {
        let basic = MetaCredentials::new(
            "admin",
            &SecretText::new("changeit"),
            &SecretText::default(),
        );
        assert_eq!(format!("{basic:?}"), r#"Basic("admin", ***)"#);
        let jwt = MetaCredentials::new("", &SecretText::default(), &SecretText::new("s3cret"));
        assert_eq!(format!("{jwt:?}"), "Jwt(***)");
    }
}
