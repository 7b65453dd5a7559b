//! HMAC-signed JSON Web Tokens: verifying a client's bearer token (SPEC §5), signing
//! the token kapauth shows the meta API when `meta-internal-shared-secret` is set
//! (SPEC §4), and the token check of the meta server's access rule (SPEC §8).
//!
//! `verify` reproduces what Kapacitor gets from golang-jwt v4.5.2's `jwt.Parse` with an
//! HMAC-only key function: the same checks in the same order with the same texts, since
//! those texts reach the client as `invalid token: …`. `username_from_claims` holds
//! Kapacitor's own rules that follow the parse. This file never looks a user up, never
//! reads a clock (the caller passes `now`), and never verifies with an empty key.
//! Tokens and secrets have no `Display` and a `Debug` that prints `***`, so they cannot
//! reach a log by accident.

use std::fmt;

use ring::hmac;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::secret::base64;

/// A bearer token exactly as the client sent it.
#[derive(Clone)]
pub struct Token(String);

impl Token {
    pub fn new(token: String) -> Self {
        Self(token)
    }

    /// The token's text, for `verify` and for the fuzz targets that compare what
    /// `parse_credentials` read; nothing that logs takes it.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("***")
    }
}

/// A shared secret that signs and verifies tokens (`[http] shared-secret`,
/// `[auth] meta-internal-shared-secret`, `[meta] internal-shared-secret`).
#[derive(Clone)]
pub struct Secret(Vec<u8>);

impl Secret {
    pub fn new(secret: impl Into<Vec<u8>>) -> Self {
        Self(secret.into())
    }

    /// An empty secret means "not configured": `verify` rejects every token then.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("***")
    }
}

/// Why `verify` refused a token. The texts are golang-jwt v4's, capitals and trailing
/// periods included, because Kapacitor sends them to the client; the malformed and
/// missing-secret texts are kapauth's own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwtError {
    /// The token does not have exactly three dot-separated segments.
    InvalidSegmentCount,
    /// The header segment is not base64url and the token starts with `bearer `: the
    /// client put the scheme word into the token.
    BearerPrefix,
    /// The header segment is not unpadded base64url.
    HeaderNotBase64,
    /// The header is not a JSON object; holds the JSON parser's explanation.
    HeaderNotJson(String),
    /// The claims segment is not unpadded base64url.
    ClaimsNotBase64,
    /// The claims are not a JSON object; holds the JSON parser's explanation.
    ClaimsNotJson(String),
    /// The header has no `alg`, or an `alg` that is not a string.
    AlgorithmUnspecified,
    /// The header's `alg` names no signing method golang-jwt knows.
    AlgorithmUnavailable,
    /// The header's `alg` is a known method that is not HMAC (`none` included).
    UnexpectedSigningMethod(String),
    /// No shared secret is configured, so no token can be trusted (kapauth).
    NoSharedSecret,
    /// `exp` is not in the future, or is not a number.
    Expired,
    /// `iat` is in the future, or is not a number.
    UsedBeforeIssued,
    /// `nbf` is in the future, or is not a number.
    NotValidYet,
    /// The signature does not match the header and claims under the shared secret.
    SignatureInvalid,
}

impl fmt::Display for JwtError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidSegmentCount => {
                formatter.write_str("token contains an invalid number of segments")
            }
            Self::BearerPrefix => formatter.write_str("tokenstring should not contain 'bearer '"),
            Self::HeaderNotBase64 => {
                formatter.write_str("token is malformed: header is not unpadded base64url")
            }
            Self::HeaderNotJson(reason) => {
                write!(
                    formatter,
                    "token is malformed: header is not a json object: {reason}"
                )
            }
            Self::ClaimsNotBase64 => {
                formatter.write_str("token is malformed: claims are not unpadded base64url")
            }
            Self::ClaimsNotJson(reason) => {
                write!(
                    formatter,
                    "token is malformed: claims are not a json object: {reason}"
                )
            }
            Self::AlgorithmUnspecified => {
                formatter.write_str("signing method (alg) is unspecified.")
            }
            Self::AlgorithmUnavailable => {
                formatter.write_str("signing method (alg) is unavailable.")
            }
            Self::UnexpectedSigningMethod(algorithm) => {
                write!(formatter, "unexpected signing method: {algorithm}")
            }
            Self::NoSharedSecret => formatter.write_str("no shared secret is configured"),
            Self::Expired => formatter.write_str("Token is expired"),
            Self::UsedBeforeIssued => formatter.write_str("Token used before issued"),
            Self::NotValidYet => formatter.write_str("Token is not valid yet"),
            Self::SignatureInvalid => formatter.write_str("signature is invalid"),
        }
    }
}

impl std::error::Error for JwtError {}

/// Why Kapacitor's own rules refuse the claims of a token that `verify` accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimsError {
    /// `exp` is missing, not a number, or not greater than zero.
    ExpirationRequired,
    /// `username` is missing or not a string.
    UsernameNotString,
    /// `username` is the empty string.
    UsernameEmpty,
}

impl fmt::Display for ClaimsError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(match self {
            Self::ExpirationRequired => "token expiration required",
            Self::UsernameNotString => "username in token must be a string",
            Self::UsernameEmpty => "token must contain a username",
        })
    }
}

impl std::error::Error for ClaimsError {}

/// Parses and verifies `token` as golang-jwt v4.5.2's `jwt.Parse` does with Kapacitor's
/// HMAC-only key function, at the Unix time `now_unix` (seconds), and returns its claims.
///
/// The order is golang-jwt's: segments, header, claims, `alg`, key, time claims, then
/// the signature. A bad signature wins over a time error, and among time errors the
/// last one found (`exp`, then `iat`, then `nbf`) is the one reported, because
/// golang-jwt keeps overwriting a single inner error.
pub fn verify(
    token: &Token,
    secret: &Secret,
    now_unix: i64,
) -> Result<Map<String, Value>, JwtError> {
    let text = token.as_str();
    // At most four pieces: a token full of dots must not cost an allocation per dot.
    let segments: Vec<&str> = text.splitn(4, '.').collect();
    let [header_segment, claims_segment, signature_segment] = segments.as_slice() else {
        return Err(JwtError::InvalidSegmentCount);
    };

    let Some(header_bytes) = base64::decode_url_nopad(header_segment) else {
        return Err(if starts_with_bearer(text) {
            JwtError::BearerPrefix
        } else {
            JwtError::HeaderNotBase64
        });
    };
    // Go's `json.Unmarshal` into a map accepts `null` and leaves the map empty.
    let header: Map<String, Value> =
        serde_json::from_slice::<Option<Map<String, Value>>>(&header_bytes)
            .map_err(|error| JwtError::HeaderNotJson(error.to_string()))?
            .unwrap_or_default();

    let claims_bytes = base64::decode_url_nopad(claims_segment).ok_or(JwtError::ClaimsNotBase64)?;
    let claims = first_json_object(&claims_bytes).map_err(JwtError::ClaimsNotJson)?;

    let algorithm = hmac_algorithm(&header)?;
    // (kapauth) Kapacitor would verify with an empty key; kapauth never does.
    if secret.is_empty() {
        return Err(JwtError::NoSharedSecret);
    }
    let time_error = time_claims_error(&claims, now_unix);

    // With exactly three segments, the signed text is everything before the last dot.
    let signing_input = text.rsplit_once('.').map_or("", |(input, _)| input);
    let key = hmac::Key::new(algorithm, &secret.0);
    let signature_matches = base64::decode_url_nopad(signature_segment)
        .is_some_and(|signature| hmac::verify(&key, signing_input.as_bytes(), &signature).is_ok());
    if !signature_matches {
        return Err(JwtError::SignatureInvalid);
    }
    match time_error {
        Some(error) => Err(error),
        None => Ok(claims),
    }
}

/// Kapacitor's checks after a successful parse, in its order: `exp` must be a number
/// greater than zero, and `username` a non-empty string, which is returned.
pub fn username_from_claims(claims: &Map<String, Value>) -> Result<String, ClaimsError> {
    let expiration = claims.get("exp").and_then(Value::as_f64);
    if !expiration.is_some_and(|seconds| seconds > 0.0) {
        return Err(ClaimsError::ExpirationRequired);
    }
    match claims.get("username") {
        Some(Value::String(username)) if username.is_empty() => Err(ClaimsError::UsernameEmpty),
        Some(Value::String(username)) => Ok(username.clone()),
        _ => Err(ClaimsError::UsernameNotString),
    }
}

/// Signs `claims` with HS512 under `secret` and returns the compact token, header
/// The `alg` of a token's header, when the header decodes to a JSON object holding one.
/// Says nothing of the signature: call it after `verify`.
pub fn header_algorithm(token: &Token) -> Option<String> {
    let header = token.as_str().split('.').next()?;
    let bytes = base64::decode_url_nopad(header)?;
    let object: Map<String, Value> = serde_json::from_slice(&bytes).ok()?;
    object.get("alg")?.as_str().map(str::to_string)
}

/// `{"alg":"HS512","typ":"JWT"}`. The caller builds the claims; for meta credentials
/// they are `{"username":"","exp":now+300}` (SPEC §4).
pub fn sign_hs512(claims: &Value, secret: &Secret) -> String {
    let header = base64::encode_url_nopad(HS512_HEADER.as_bytes());
    let payload = base64::encode_url_nopad(claims.to_string().as_bytes());
    let signing_input = format!("{header}.{payload}");
    let key = hmac::Key::new(hmac::HMAC_SHA512, &secret.0);
    let signature = hmac::sign(&key, signing_input.as_bytes());
    format!(
        "{signing_input}.{}",
        base64::encode_url_nopad(signature.as_ref())
    )
}

const HS512_HEADER: &str = r#"{"alg":"HS512","typ":"JWT"}"#;

/// The signing methods golang-jwt v4 registers besides HMAC. Naming one of them is
/// "unexpected"; naming anything else is "unavailable".
const OTHER_KNOWN_METHODS: [&str; 11] = [
    "none", "RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256", "PS384", "PS512",
    "EdDSA",
];

fn starts_with_bearer(text: &str) -> bool {
    // golang-jwt lower-cases the whole token first; no non-ASCII character lower-cases
    // into the letters of "bearer", so an ASCII comparison decides the same.
    text.as_bytes()
        .get(..7)
        .is_some_and(|prefix| prefix.eq_ignore_ascii_case(b"bearer "))
}

/// Reads the first JSON value of `bytes` as claims, as Go's `json.Decoder.Decode` does
/// for golang-jwt: whatever follows that value is never read, and `null` gives no claims.
fn first_json_object(bytes: &[u8]) -> Result<Map<String, Value>, String> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    Option::<Map<String, Value>>::deserialize(&mut deserializer)
        .map(Option::unwrap_or_default)
        .map_err(|error| error.to_string())
}

fn hmac_algorithm(header: &Map<String, Value>) -> Result<hmac::Algorithm, JwtError> {
    let Some(Value::String(name)) = header.get("alg") else {
        return Err(JwtError::AlgorithmUnspecified);
    };
    match name.as_str() {
        "HS256" => Ok(hmac::HMAC_SHA256),
        "HS384" => Ok(hmac::HMAC_SHA384),
        "HS512" => Ok(hmac::HMAC_SHA512),
        other if OTHER_KNOWN_METHODS.contains(&other) => {
            Err(JwtError::UnexpectedSigningMethod(other.to_owned()))
        }
        _ => Err(JwtError::AlgorithmUnavailable),
    }
}

/// The time checks of golang-jwt v4.5.2's `MapClaims.Valid`, each overwriting the
/// previous failure so the last one wins.
fn time_claims_error(claims: &Map<String, Value>, now_unix: i64) -> Option<JwtError> {
    let now = now_unix as f64;
    let mut error = None;
    if !time_claim_holds(claims.get("exp"), |expires| now < expires) {
        error = Some(JwtError::Expired);
    }
    if !time_claim_holds(claims.get("iat"), |issued| now >= issued) {
        error = Some(JwtError::UsedBeforeIssued);
    }
    if !time_claim_holds(claims.get("nbf"), |not_before| now >= not_before) {
        error = Some(JwtError::NotValidYet);
    }
    error
}

/// Whether one time claim passes, as golang-jwt v4.5.2 judges it: an absent claim or
/// the number 0 passes; a number is truncated to whole seconds (golang-jwt's
/// `TimePrecision`) and tested; any other JSON type (string, `null`, …) fails.
fn time_claim_holds(value: Option<&Value>, test: impl Fn(f64) -> bool) -> bool {
    match value {
        None => true,
        Some(Value::Number(number)) => number
            .as_f64()
            .is_some_and(|seconds| seconds == 0.0 || test(seconds.floor())),
        Some(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: i64 = 1_700_000_000;
    const SECRET: &[u8] = b"kapacitor-shared-secret";

    /// Builds a token from raw header and claims JSON, signed with HMAC over the
    /// standard signing input, independently of the code under test except for base64.
    fn token_with(header: &str, claims: &str, algorithm: hmac::Algorithm, secret: &[u8]) -> String {
        let signing_input = format!(
            "{}.{}",
            base64::encode_url_nopad(header.as_bytes()),
            base64::encode_url_nopad(claims.as_bytes())
        );
        let tag = hmac::sign(&hmac::Key::new(algorithm, secret), signing_input.as_bytes());
        format!("{signing_input}.{}", base64::encode_url_nopad(tag.as_ref()))
    }

    fn hs256(claims: &str) -> String {
        token_with(
            r#"{"alg":"HS256","typ":"JWT"}"#,
            claims,
            hmac::HMAC_SHA256,
            SECRET,
        )
    }

    /// Verifies `token` with the test secret at `NOW` and compares the outcome: the
    /// claims as JSON on success, the error text on failure.
    fn check(token: &str, expected: Result<Value, &str>) {
        check_with(token, SECRET, expected);
    }

    fn check_with(token: &str, secret: &[u8], expected: Result<Value, &str>) {
        let outcome = verify(&Token::new(token.to_owned()), &Secret::new(secret), NOW)
            .map(Value::Object)
            .map_err(|error| error.to_string());
        let expected = expected.map_err(str::to_owned);
        assert_eq!(outcome, expected, "token {token:?}");
    }

    fn check_username(claims: Value, expected: Result<&str, &str>) {
        let Value::Object(claims) = claims else {
            panic!("claims must be an object in these tests");
        };
        let outcome = username_from_claims(&claims).map_err(|error| error.to_string());
        let expected = expected.map(str::to_owned).map_err(str::to_owned);
        assert_eq!(outcome, expected);
    }

    #[test]
    fn known_answer_tokens_computed_with_python_hmac_verify() {
        // python3: hmac.new(secret, signing_input, sha256/sha512) and urlsafe_b64encode
        // with the padding stripped.
        check_with(
            "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJleHAiOjIwMDAwMDAwMDAsInVzZXJuYW1lIjoiYWxpY2UifQ.AqP1UsB4oZqhzzzr7tHtNASDrB_g7-SV7LHV4JAcJW0",
            b"kapauth-known-answer",
            Ok(json!({"exp": 2_000_000_000, "username": "alice"})),
        );
        check_with(
            "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJleHAiOjIwMDAwMDAwMDAsInVzZXJuYW1lIjoiYWxpY2UifQ.AqP1UsB4oZqhzzzr7tHtNASDrB_g7-SV7LHV4JAcJW0",
            b"kapauth-known-answeR",
            Err("signature is invalid"),
        );
    }

    #[test]
    fn sign_hs512_matches_a_known_answer_computed_with_python_hmac() {
        let token = sign_hs512(
            &json!({"username": "", "exp": 1_700_000_300}),
            &Secret::new("meta-shared-secret"),
        );
        assert_eq!(
            token,
            "eyJhbGciOiJIUzUxMiIsInR5cCI6IkpXVCJ9.eyJleHAiOjE3MDAwMDAzMDAsInVzZXJuYW1lIjoiIn0.PH05F6iBvfFLXDnlk3eYs7whrkNpSGete67R6jpbseFvfX79P3X8MUgpCFzpfCHzJvxi-lniei_eR8pIKx2NIA"
        );
    }

    #[test]
    fn a_signed_token_round_trips_through_verify() {
        let claims = json!({"username": "alice", "exp": NOW + 300, "role": ["a", 1]});
        let token = sign_hs512(&claims, &Secret::new(SECRET));
        check(&token, Ok(claims));
    }

    #[test]
    fn every_hmac_algorithm_verifies_with_its_own_hash() {
        let claims = r#"{"exp":1700000300,"username":"alice"}"#;
        let expected = json!({"exp": 1_700_000_300, "username": "alice"});
        check(
            &token_with(r#"{"alg":"HS256"}"#, claims, hmac::HMAC_SHA256, SECRET),
            Ok(expected.clone()),
        );
        check(
            &token_with(r#"{"alg":"HS384"}"#, claims, hmac::HMAC_SHA384, SECRET),
            Ok(expected.clone()),
        );
        check(
            &token_with(r#"{"alg":"HS512"}"#, claims, hmac::HMAC_SHA512, SECRET),
            Ok(expected),
        );
        check(
            &token_with(r#"{"alg":"HS256"}"#, claims, hmac::HMAC_SHA512, SECRET),
            Err("signature is invalid"),
        );
        check(
            &token_with(r#"{"alg":"HS512"}"#, claims, hmac::HMAC_SHA384, SECRET),
            Err("signature is invalid"),
        );
    }

    #[test]
    fn a_wrong_secret_or_a_tampered_segment_invalidates_the_signature() {
        let token = hs256(r#"{"exp":1700000300,"username":"alice"}"#);
        check_with(&token, b"another-secret", Err("signature is invalid"));
        let forged_claims = base64::encode_url_nopad(br#"{"exp":1700000300,"username":"admin"}"#);
        let parts: Vec<&str> = token.split('.').collect();
        let [header, _, signature] = parts.as_slice() else {
            panic!("a signed token has three segments");
        };
        check(
            &format!("{header}.{forged_claims}.{signature}"),
            Err("signature is invalid"),
        );
        let forged_header = base64::encode_url_nopad(br#"{"alg":"HS256","typ":"JWT","x":1}"#);
        let claims = token.split('.').nth(1).unwrap_or_default();
        check(
            &format!("{forged_header}.{claims}.{signature}"),
            Err("signature is invalid"),
        );
        check(&format!("{token}A"), Err("signature is invalid"));
        check(&token.replace(signature, ""), Err("signature is invalid"));
        check(
            &format!("{header}.{claims}.{signature}="),
            Err("signature is invalid"),
        );
        check(
            &format!("{header}.{claims}.!!!"),
            Err("signature is invalid"),
        );
    }

    #[test]
    fn segment_counts_other_than_three_are_rejected_first() {
        check("", Err("token contains an invalid number of segments"));
        check("abc", Err("token contains an invalid number of segments"));
        check("a.b", Err("token contains an invalid number of segments"));
        check(
            "a.b.c.d",
            Err("token contains an invalid number of segments"),
        );
        check("....", Err("token contains an invalid number of segments"));
        check(
            &format!("{}.", hs256("{}")),
            Err("token contains an invalid number of segments"),
        );
    }

    #[test]
    fn undecodable_segments_are_malformed() {
        let claims = base64::encode_url_nopad(br#"{"exp":1700000300}"#);
        let header = base64::encode_url_nopad(br#"{"alg":"HS256"}"#);
        check(
            &format!("!!.{claims}.sig"),
            Err("token is malformed: header is not unpadded base64url"),
        );
        check(
            &format!("{header}=.{claims}.sig"),
            Err("token is malformed: header is not unpadded base64url"),
        );
        check(
            &format!("{header}.{claims}=.sig"),
            Err("token is malformed: claims are not unpadded base64url"),
        );
        check(
            &format!("{header}.@.sig"),
            Err("token is malformed: claims are not unpadded base64url"),
        );
        check(
            &format!("bearer {header}.{claims}.sig"),
            Err("tokenstring should not contain 'bearer '"),
        );
        check(
            &format!("BeArEr {header}.{claims}.sig"),
            Err("tokenstring should not contain 'bearer '"),
        );
        check(
            &format!("Bearer:{header}.{claims}.sig"),
            Err("token is malformed: header is not unpadded base64url"),
        );
    }

    #[test]
    fn header_and_claims_must_be_json_objects() {
        let header = base64::encode_url_nopad(br#"{"alg":"HS256"}"#);
        let claims = base64::encode_url_nopad(br#"{"exp":1700000300}"#);
        let not_json = base64::encode_url_nopad(b"not json");
        let array = base64::encode_url_nopad(b"[1,2]");
        let trailing = base64::encode_url_nopad(br#"{"alg":"HS256"} x"#);
        let empty = "";
        for bad_header in [&not_json, &array, &trailing] {
            let outcome = verify(
                &Token::new(format!("{bad_header}.{claims}.sig")),
                &Secret::new(SECRET),
                NOW,
            );
            assert!(
                matches!(outcome, Err(JwtError::HeaderNotJson(_))),
                "{bad_header}: {outcome:?}"
            );
        }
        for bad_claims in [&not_json, &array, empty] {
            let outcome = verify(
                &Token::new(format!("{header}.{bad_claims}.sig")),
                &Secret::new(SECRET),
                NOW,
            );
            assert!(
                matches!(outcome, Err(JwtError::ClaimsNotJson(_))),
                "{bad_claims}: {outcome:?}"
            );
        }
        let outcome = verify(
            &Token::new(format!("{header}.{not_json}.sig")),
            &Secret::new(SECRET),
            NOW,
        );
        let text = outcome
            .map_err(|error| error.to_string())
            .err()
            .unwrap_or_default();
        assert!(
            text.starts_with("token is malformed: claims are not a json object: "),
            "{text}"
        );
    }

    #[test]
    fn claims_are_read_like_go_reads_them() {
        // Go's json.Decoder stops after the first value, and `null` decodes to no claims.
        check(
            &hs256(r#"{"exp":1700000300} trailing"#),
            Ok(json!({"exp": 1_700_000_300})),
        );
        check(&hs256("null"), Ok(json!({})));
        check(&hs256(r#"{"a":1,"a":2}"#), Ok(json!({"a": 2})));
        check(
            &token_with("null", "{}", hmac::HMAC_SHA256, SECRET),
            Err("signing method (alg) is unspecified."),
        );
    }

    #[test]
    fn algorithms_other_than_hmac_are_rejected_with_golang_jwt_texts() {
        let claims = r#"{"exp":1700000300,"username":"alice"}"#;
        let check_alg = |header: &str, expected: &str| {
            check(
                &token_with(header, claims, hmac::HMAC_SHA256, SECRET),
                Err(expected),
            );
        };
        check_alg(r#"{"alg":"none"}"#, "unexpected signing method: none");
        check_alg(r#"{"alg":"RS256"}"#, "unexpected signing method: RS256");
        check_alg(r#"{"alg":"RS384"}"#, "unexpected signing method: RS384");
        check_alg(r#"{"alg":"RS512"}"#, "unexpected signing method: RS512");
        check_alg(r#"{"alg":"ES256"}"#, "unexpected signing method: ES256");
        check_alg(r#"{"alg":"ES384"}"#, "unexpected signing method: ES384");
        check_alg(r#"{"alg":"ES512"}"#, "unexpected signing method: ES512");
        check_alg(r#"{"alg":"PS256"}"#, "unexpected signing method: PS256");
        check_alg(r#"{"alg":"PS384"}"#, "unexpected signing method: PS384");
        check_alg(r#"{"alg":"PS512"}"#, "unexpected signing method: PS512");
        check_alg(r#"{"alg":"EdDSA"}"#, "unexpected signing method: EdDSA");
        check_alg(r#"{"alg":"None"}"#, "signing method (alg) is unavailable.");
        check_alg(r#"{"alg":"hs256"}"#, "signing method (alg) is unavailable.");
        check_alg(r#"{"alg":"HS1"}"#, "signing method (alg) is unavailable.");
        check_alg(r#"{"alg":""}"#, "signing method (alg) is unavailable.");
        check_alg(r#"{"typ":"JWT"}"#, "signing method (alg) is unspecified.");
        check_alg(r#"{"alg":256}"#, "signing method (alg) is unspecified.");
        check_alg(r#"{"alg":null}"#, "signing method (alg) is unspecified.");
        check_alg("{}", "signing method (alg) is unspecified.");
    }

    #[test]
    fn an_empty_secret_rejects_every_token_after_the_algorithm_check() {
        let signed_with_empty_key = token_with(
            r#"{"alg":"HS256"}"#,
            r#"{"exp":1700000300,"username":"alice"}"#,
            hmac::HMAC_SHA256,
            b"",
        );
        check_with(
            &signed_with_empty_key,
            b"",
            Err("no shared secret is configured"),
        );
        check_with(
            &hs256(r#"{"exp":1}"#),
            b"",
            Err("no shared secret is configured"),
        );
        check_with(
            &token_with(r#"{"alg":"none"}"#, "{}", hmac::HMAC_SHA256, b""),
            b"",
            Err("unexpected signing method: none"),
        );
    }

    #[test]
    fn exp_must_be_in_the_future() {
        check(&hs256(r#"{"exp":1699999999}"#), Err("Token is expired"));
        check(&hs256(r#"{"exp":1700000000}"#), Err("Token is expired"));
        check(
            &hs256(r#"{"exp":1700000001}"#),
            Ok(json!({"exp": 1_700_000_001})),
        );
        check(&hs256(r#"{"exp":1700000000.9}"#), Err("Token is expired"));
        check(
            &hs256(r#"{"exp":1700000001.5}"#),
            Ok(json!({"exp": 1_700_000_001.5})),
        );
        check(&hs256(r#"{"exp":-5}"#), Err("Token is expired"));
        check(&hs256(r#"{"exp":0.5}"#), Err("Token is expired"));
        check(&hs256(r#"{"exp":1e300}"#), Ok(json!({"exp": 1e300})));
    }

    #[test]
    fn exp_of_zero_counts_as_absent_like_golang_jwt() {
        check(&hs256(r#"{"exp":0}"#), Ok(json!({"exp": 0})));
        check(&hs256(r#"{"exp":0.0}"#), Ok(json!({"exp": 0.0})));
        check(&hs256("{}"), Ok(json!({})));
    }

    #[test]
    fn iat_and_nbf_must_not_be_in_the_future() {
        check(
            &hs256(r#"{"iat":1700000001}"#),
            Err("Token used before issued"),
        );
        check(
            &hs256(r#"{"iat":1700000000}"#),
            Ok(json!({"iat": 1_700_000_000})),
        );
        check(
            &hs256(r#"{"iat":1700000000.9}"#),
            Ok(json!({"iat": 1_700_000_000.9})),
        );
        check(&hs256(r#"{"iat":1}"#), Ok(json!({"iat": 1})));
        check(
            &hs256(r#"{"nbf":1700000001}"#),
            Err("Token is not valid yet"),
        );
        check(
            &hs256(r#"{"nbf":1700000000}"#),
            Ok(json!({"nbf": 1_700_000_000})),
        );
        check(
            &hs256(r#"{"nbf":1700000000.9}"#),
            Ok(json!({"nbf": 1_700_000_000.9})),
        );
        check(&hs256(r#"{"nbf":0}"#), Ok(json!({"nbf": 0})));
    }

    #[test]
    fn time_claims_that_are_not_numbers_fail_like_golang_jwt_v4_5() {
        check(&hs256(r#"{"exp":"1800000000"}"#), Err("Token is expired"));
        check(&hs256(r#"{"exp":null}"#), Err("Token is expired"));
        check(&hs256(r#"{"exp":true}"#), Err("Token is expired"));
        check(&hs256(r#"{"iat":"0"}"#), Err("Token used before issued"));
        check(&hs256(r#"{"nbf":[]}"#), Err("Token is not valid yet"));
    }

    #[test]
    fn the_last_failing_time_claim_names_the_error() {
        check(
            &hs256(r#"{"exp":1,"iat":1800000000}"#),
            Err("Token used before issued"),
        );
        check(
            &hs256(r#"{"exp":1,"nbf":1800000000}"#),
            Err("Token is not valid yet"),
        );
        check(
            &hs256(r#"{"iat":1800000000,"nbf":1800000000}"#),
            Err("Token is not valid yet"),
        );
        check(
            &hs256(r#"{"exp":1,"iat":1800000000,"nbf":1800000000}"#),
            Err("Token is not valid yet"),
        );
        check(
            &hs256(r#"{"exp":1,"iat":1800000000,"nbf":1}"#),
            Err("Token used before issued"),
        );
    }

    /// Found by the `jwt` fuzz target: serde_json's default number parsing read this `exp`
    /// as 1700000001.0 where Go (correctly rounded) reads 1700000000.9999998, so an
    /// expired token passed.
    #[test]
    fn time_claims_are_read_correctly_rounded_as_go_reads_them() {
        check(
            &hs256(r#"{"exp":1700000000.99999987797211405,"username":"alice"}"#),
            Err("Token is expired"),
        );
        let claims = verify(
            &Token::new(sign_hs512(
                &json!({"exp": 1.6666666666666665e40}),
                &Secret::new(SECRET),
            )),
            &Secret::new(SECRET),
            NOW,
        );
        assert_eq!(
            claims.map(|claims| claims["exp"].as_f64()),
            Ok(Some(1.6666666666666665e40))
        );
    }

    #[test]
    fn a_bad_signature_wins_over_every_time_error() {
        let expired = hs256(r#"{"exp":1,"iat":1800000000,"nbf":1800000000}"#);
        check_with(&expired, b"wrong", Err("signature is invalid"));
    }

    #[test]
    fn username_rules_follow_kapacitor() {
        check_username(json!({"exp": 1, "username": "alice"}), Ok("alice"));
        check_username(json!({"exp": 0.5, "username": "alice"}), Ok("alice"));
        check_username(
            json!({"username": "alice"}),
            Err("token expiration required"),
        );
        check_username(
            json!({"exp": 0, "username": "alice"}),
            Err("token expiration required"),
        );
        check_username(
            json!({"exp": -1, "username": "alice"}),
            Err("token expiration required"),
        );
        check_username(
            json!({"exp": "1800000000", "username": "alice"}),
            Err("token expiration required"),
        );
        check_username(
            json!({"exp": null, "username": "alice"}),
            Err("token expiration required"),
        );
        check_username(json!({"exp": 1}), Err("username in token must be a string"));
        check_username(
            json!({"exp": 1, "username": 7}),
            Err("username in token must be a string"),
        );
        check_username(
            json!({"exp": 1, "username": null}),
            Err("username in token must be a string"),
        );
        check_username(
            json!({"exp": 1, "username": ["alice"]}),
            Err("username in token must be a string"),
        );
        check_username(
            json!({"exp": 1, "username": ""}),
            Err("token must contain a username"),
        );
        check_username(json!({"username": ""}), Err("token expiration required"));
    }

    #[test]
    fn secrets_and_tokens_never_print_themselves() {
        assert_eq!(
            format!("{:?}", Token::new("eyJ.secret.token".to_owned())),
            "***"
        );
        assert_eq!(format!("{:?}", Secret::new("hunter2")), "***");
        assert!(Secret::new("").is_empty());
        assert!(!Secret::new("x").is_empty());
    }
}
