//! Turns a request's `Authorization` header and query string into the `Credentials` it
//! presents (SPEC §1). It never looks a user up, never checks a password or a token,
//! and never decides what a request may do: a bearer token comes out unverified, and a
//! username and password come out unchecked.
//!
//! The order is SPEC §1's: a `Bearer` header, then a `Basic` header, then the `u` and
//! `p` query parameters. The header is read with Go's rules (net/http's `BasicAuth`,
//! `base64.StdEncoding`) and the query with Go's `url.ParseQuery`, because Kapacitor
//! reads them so and a client must get the same answer from kapauth.

use std::fmt;

use crate::query::query_value;
use crate::secret::basic_auth;
use crate::secret::jwt::Token;
use crate::secret::password::Password;

/// What a request presents to prove who it is.
#[derive(Debug, Clone)]
pub enum Credentials {
    /// A username and password, from a `Basic` header or the `u` and `p` parameters.
    Password {
        username: String,
        password: Password,
    },
    /// A bearer token, not yet verified.
    Bearer(Token),
}

/// Why a request presents no usable credentials. Each becomes a 401.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialsError {
    /// Neither header nor query holds credentials kapauth can read.
    Unparseable,
    /// A `Basic` header carries an empty username.
    UsernameRequired,
    /// The username is Kapacitor's internal subscription user `~subscriber`, which
    /// kapauth does not accept (kapauth).
    SubscriptionToken,
}

impl fmt::Display for CredentialsError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(match self {
            Self::Unparseable => "unable to parse authentication credentials",
            Self::UsernameRequired => "username required",
            Self::SubscriptionToken => {
                "subscription tokens are not supported; give the subscription a meta user"
            }
        })
    }
}

impl std::error::Error for CredentialsError {}

/// Reads the credentials of a request from its first `Authorization` header value and
/// its raw query string (without the `?`), in SPEC §1's order:
/// 1. the header split at its first space gives exactly `Bearer` and a token (any text,
///    even empty: verifying it is the next step's job);
/// 2. the header is `Basic ` (scheme word in any case, then one space) and padded
///    standard base64 of UTF-8 `user:pass`, split at the first colon;
/// 3. otherwise, the query's first `u` and `p` values, both non-empty;
/// 4. otherwise `Unparseable`.
pub fn parse_credentials(
    authorization: Option<&str>,
    raw_query: Option<&str>,
) -> Result<Credentials, CredentialsError> {
    if let Some(header) = authorization {
        if let Some(token) = bearer_token(header) {
            return Ok(Credentials::Bearer(Token::new(token.to_owned())));
        }
        if let Some((username, password)) = basic_auth(header) {
            // Only the Basic username is Kapacitor's subscription user (SPEC §1); in the
            // query, `~subscriber` is an ordinary name that meta looks up.
            if username == SUBSCRIPTION_USERNAME {
                return Err(CredentialsError::SubscriptionToken);
            }
            return password_credentials(username, password);
        }
    }
    // An Authorization header that is neither Bearer nor readable Basic falls through
    // to the query, as in Kapacitor.
    if let Some(query) = raw_query {
        let username = query_value(query, "u").unwrap_or_default();
        let password = query_value(query, "p").unwrap_or_default();
        if !username.is_empty() && !password.is_empty() {
            return password_credentials(username, Password::new(password));
        }
    }
    Err(CredentialsError::Unparseable)
}

/// Kapacitor's internal subscription user, which InfluxDB uses to write to it.
const SUBSCRIPTION_USERNAME: &str = "~subscriber";

/// The token of a `Bearer` header. The scheme word is case-sensitive, as in Kapacitor:
/// `bearer x` is not a bearer token.
fn bearer_token(header: &str) -> Option<&str> {
    match header.split_once(' ') {
        Some(("Bearer", token)) => Some(token),
        _ => None,
    }
}

fn password_credentials(
    username: String,
    password: Password,
) -> Result<Credentials, CredentialsError> {
    if username.is_empty() {
        return Err(CredentialsError::UsernameRequired);
    }
    Ok(Credentials::Password { username, password })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A comparable picture of the outcome, since secrets deliberately have no
    /// `PartialEq`.
    #[derive(Debug, PartialEq, Eq)]
    enum Seen {
        Password(&'static str, &'static str),
        Bearer(&'static str),
        Error(CredentialsError),
    }

    fn check(authorization: Option<&str>, raw_query: Option<&str>, expected: Seen) {
        let seen = match parse_credentials(authorization, raw_query) {
            Ok(Credentials::Password { username, password }) => {
                Ok((Some(username), password.as_str().to_owned()))
            }
            Ok(Credentials::Bearer(token)) => Ok((None, token.as_str().to_owned())),
            Err(error) => Err(error),
        };
        let wanted = match expected {
            Seen::Password(username, password) => {
                Ok((Some(username.to_owned()), password.to_owned()))
            }
            Seen::Bearer(token) => Ok((None, token.to_owned())),
            Seen::Error(error) => Err(error),
        };
        assert_eq!(
            seen, wanted,
            "authorization {authorization:?}, query {raw_query:?}"
        );
    }

    use CredentialsError::{SubscriptionToken, Unparseable, UsernameRequired};
    use Seen::{Bearer, Error, Password as Pw};

    // base64("alice:s3cret") and friends, computed with python3's base64.b64encode.
    const ALICE: &str = "Basic YWxpY2U6czNjcmV0";

    #[test]
    fn bearer_headers_give_the_rest_of_the_header_as_the_token() {
        check(Some("Bearer x"), None, Bearer("x"));
        check(
            Some("Bearer eyJ.a.b"),
            Some("u=bob&p=pw"),
            Bearer("eyJ.a.b"),
        );
        check(Some("Bearer "), None, Bearer(""));
        check(Some("Bearer a b"), None, Bearer("a b"));
        check(Some("Bearer  x"), None, Bearer(" x"));
        check(
            Some("Bearer YWxpY2U6czNjcmV0"),
            None,
            Bearer("YWxpY2U6czNjcmV0"),
        );
    }

    #[test]
    fn bearer_is_case_sensitive_and_needs_its_space() {
        check(Some("bearer x"), None, Error(Unparseable));
        check(Some("BEARER x"), Some("u=bob&p=pw"), Pw("bob", "pw"));
        check(Some("Bearer"), None, Error(Unparseable));
        check(Some("Bearerx"), Some("u=bob&p=pw"), Pw("bob", "pw"));
        check(Some(" Bearer x"), None, Error(Unparseable));
        check(Some("Bearer\tx"), None, Error(Unparseable));
    }

    #[test]
    fn basic_headers_accept_the_scheme_word_in_any_case() {
        check(Some(ALICE), None, Pw("alice", "s3cret"));
        check(Some("basic YWxpY2U6czNjcmV0"), None, Pw("alice", "s3cret"));
        check(Some("BASIC YWxpY2U6czNjcmV0"), None, Pw("alice", "s3cret"));
        check(Some("bAsIc YWxpY2U6czNjcmV0"), None, Pw("alice", "s3cret"));
    }

    #[test]
    fn basic_headers_win_over_query_credentials() {
        check(Some(ALICE), Some("u=bob&p=pw"), Pw("alice", "s3cret"));
    }

    #[test]
    fn basic_needs_exactly_one_space_and_padded_standard_base64() {
        check(Some("Basic  YWxpY2U6czNjcmV0"), None, Error(Unparseable));
        check(Some("Basic\tYWxpY2U6czNjcmV0"), None, Error(Unparseable));
        check(Some("BasicYWxpY2U6czNjcmV0"), None, Error(Unparseable));
        check(Some("Basic YWxpY2U6czNjcmV0 "), None, Error(Unparseable));
        // base64("a:b") is "YTpi"; base64("ab:c") needs padding: "YWI6Yw==".
        check(Some("Basic YWI6Yw=="), None, Pw("ab", "c"));
        check(Some("Basic YWI6Yw"), None, Error(Unparseable));
        check(Some("Basic YWI6Yw="), None, Error(Unparseable));
        check(Some("Basic YWI6Yw==="), None, Error(Unparseable));
        check(Some("Basic YTpi!"), None, Error(Unparseable));
        check(Some("Basic YT-i"), None, Error(Unparseable));
        check(Some("Basic "), None, Error(Unparseable));
        check(Some("Basic"), None, Error(Unparseable));
        check(Some("Basic é"), None, Error(Unparseable));
    }

    #[test]
    fn basic_base64_ignores_line_breaks_like_go() {
        check(
            Some("Basic YWxp\r\nY2U6czNjcmV0"),
            None,
            Pw("alice", "s3cret"),
        );
    }

    #[test]
    fn basic_splits_at_the_first_colon_and_requires_one() {
        // "alice" alone, and "alice:s3:cr:et".
        check(Some("Basic YWxpY2U="), None, Error(Unparseable));
        check(
            Some("Basic YWxpY2U6czM6Y3I6ZXQ="),
            None,
            Pw("alice", "s3:cr:et"),
        );
        // "alice:" has an empty password, which is left for the password check to fail.
        check(Some("Basic YWxpY2U6"), None, Pw("alice", ""));
        // ":" and ":s3cret" have an empty username.
        check(Some("Basic Og=="), None, Error(UsernameRequired));
        check(
            Some("Basic OnMzY3JldA=="),
            Some("u=bob&p=pw"),
            Error(UsernameRequired),
        );
    }

    #[test]
    fn basic_decodes_utf8_and_falls_through_on_anything_else() {
        // "jürgen:pässword" in UTF-8.
        check(
            Some("Basic asO8cmdlbjpww6Rzc3dvcmQ="),
            None,
            Pw("jürgen", "pässword"),
        );
        // "\xff\xfe:pw" is not UTF-8.
        check(Some("Basic //46cHc="), None, Error(Unparseable));
        check(Some("Basic //46cHc="), Some("u=bob&p=pw"), Pw("bob", "pw"));
    }

    #[test]
    fn other_or_broken_headers_fall_through_to_the_query() {
        check(Some("garbage"), Some("u=bob&p=pw"), Pw("bob", "pw"));
        check(Some(""), Some("u=bob&p=pw"), Pw("bob", "pw"));
        check(
            Some("Digest username=bob"),
            Some("u=bob&p=pw"),
            Pw("bob", "pw"),
        );
        check(Some("Basic !!!!"), Some("u=bob&p=pw"), Pw("bob", "pw"));
        check(Some("Basic YWxpY2U="), Some("u=bob&p=pw"), Pw("bob", "pw"));
        check(Some("garbage"), None, Error(Unparseable));
        check(Some("garbage"), Some("u=bob"), Error(Unparseable));
    }

    #[test]
    fn query_credentials_need_both_u_and_p_non_empty() {
        check(None, Some("u=bob&p=pw"), Pw("bob", "pw"));
        check(None, Some("p=pw&db=x&u=bob"), Pw("bob", "pw"));
        check(None, Some("u=bob"), Error(Unparseable));
        check(None, Some("p=pw"), Error(Unparseable));
        check(None, Some("u=&p=pw"), Error(Unparseable));
        check(None, Some("u=bob&p="), Error(Unparseable));
        check(None, Some("u&p"), Error(Unparseable));
        check(None, Some(""), Error(Unparseable));
        check(None, None, Error(Unparseable));
    }

    #[test]
    fn query_credentials_use_the_first_value_with_go_decoding() {
        check(None, Some("u=bob&u=eve&p=pw&p=other"), Pw("bob", "pw"));
        check(None, Some("u=&u=eve&p=pw"), Error(Unparseable));
        check(None, Some("u=b+o+b&p=a%20b%2Bc%3D"), Pw("b o b", "a b+c="));
        check(
            None,
            Some("u=%7Esubscriber2&p=%C3%A4"),
            Pw("~subscriber2", "ä"),
        );
        check(None, Some("u=bob&p=p%zz&p=pw"), Pw("bob", "pw"));
        check(None, Some("u=bob;x&u=eve&p=pw"), Pw("eve", "pw"));
    }

    #[test]
    fn only_the_basic_username_is_the_subscription_user() {
        // base64("~subscriber:token").
        check(
            Some("Basic fnN1YnNjcmliZXI6dG9rZW4="),
            None,
            Error(SubscriptionToken),
        );
        check(
            None,
            Some("u=~subscriber&p=token"),
            Pw("~subscriber", "token"),
        );
        check(
            None,
            Some("u=%7Esubscriber&p=token"),
            Pw("~subscriber", "token"),
        );
        check(
            None,
            Some("u=~Subscriber&p=token"),
            Pw("~Subscriber", "token"),
        );
    }

    #[test]
    fn errors_read_as_the_spec_words_them() {
        assert_eq!(
            Unparseable.to_string(),
            "unable to parse authentication credentials"
        );
        assert_eq!(UsernameRequired.to_string(), "username required");
        assert_eq!(
            SubscriptionToken.to_string(),
            "subscription tokens are not supported; give the subscription a meta user"
        );
    }

    #[test]
    fn credentials_never_print_their_secrets() {
        let printed = format!("{:?}", parse_credentials(Some(ALICE), None));
        assert!(!printed.contains("s3cret"), "{printed}");
        let printed = format!("{:?}", parse_credentials(Some("Bearer eyJ.secret.x"), None));
        assert!(!printed.contains("secret"), "{printed}");
    }
}
