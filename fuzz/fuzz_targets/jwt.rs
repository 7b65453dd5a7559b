//! `jwt`: `secret/jwt.rs` on arbitrary tokens and on tokens it signed itself (SPEC §4, §5).
//!
//! Input: `[mode, secret_len, position, replacement, exp, iat, nbf, rest...]`. The first
//! `secret_len` bytes of `rest` are the shared secret, the others (lossy UTF-8) the text.
//! The text is verified as a token as it is; then claims are built, signed with
//! `sign_hs512` and changed at one byte: at `position` (modulo the token's length) the
//! byte becomes `replacement` as ASCII. The claims hold `username`: the text (a number
//! with `mode` bit 5), and `exp`, `iat`, `nbf` at NOW plus the signed byte, when `mode`
//! bits 0, 1, 2 say (bit 3 writes `exp` as 0, bit 4 adds half a second to each); with
//! bit 6, the text itself is the claims when it is a JSON object.
//!
//! Asserts, besides "no panic":
//! - every refusal reads as one of the texts SPEC §5 and golang-jwt give, or kapauth's
//!   documented malformed-token texts;
//! - no token verifies without a secret;
//! - a token `sign_hs512` made verifies under its secret exactly when golang-jwt's time
//!   rules pass (the last failing of `exp`, `iat`, `nbf` is the error), and gives back its
//!   claims; `username_from_claims` then follows Kapacitor's rules; its `alg` is HS512;
//! - one byte changed in the header or claims never verifies; one changed in the
//!   signature verifies only when base64url decodes the changed signature to the same
//!   bytes (Go's non-strict decoder ignores the last character's unused bits).
#![no_main]

use kapauth::secret::base64::decode_url_nopad;
use kapauth::secret::jwt::{
    ClaimsError, JwtError, Secret, Token, header_algorithm, sign_hs512, username_from_claims,
    verify,
};
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value, json};

const NOW: i64 = 1_700_000_000;

/// The texts a refusal may have, whole or as a prefix with the parser's explanation.
const TEXTS: [&str; 11] = [
    "token contains an invalid number of segments",
    "tokenstring should not contain 'bearer '",
    "token is malformed: header is not unpadded base64url",
    "token is malformed: claims are not unpadded base64url",
    "signing method (alg) is unspecified.",
    "signing method (alg) is unavailable.",
    "no shared secret is configured",
    "Token is expired",
    "Token used before issued",
    "Token is not valid yet",
    "signature is invalid",
];
const PREFIXES: [&str; 2] = [
    "token is malformed: header is not a json object: ",
    "token is malformed: claims are not a json object: ",
];
const OTHER_METHODS: [&str; 11] = [
    "none", "RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256", "PS384", "PS512",
    "EdDSA",
];

fuzz_target!(|data: &[u8]| {
    let [
        mode,
        secret_len,
        position,
        replacement,
        exp,
        iat,
        nbf,
        rest @ ..,
    ] = data
    else {
        return;
    };
    let secret_len = usize::from(*secret_len).min(rest.len());
    let (secret, text) = rest.split_at(secret_len);
    let text = String::from_utf8_lossy(text).into_owned();
    let secret = if secret.is_empty() {
        Secret::new("k")
    } else {
        Secret::new(secret)
    };

    let token = Token::new(text.clone());
    if let Err(error) = verify(&token, &secret, NOW) {
        assert_documented(&error);
    }
    let refused = verify(&token, &Secret::new(""), NOW);
    assert!(refused.is_err(), "a token verified without a secret");
    assert_documented(&refused.unwrap_err());

    let claims = claims(*mode, &text, [*exp, *iat, *nbf]);
    let signed = sign_hs512(&Value::Object(claims.clone()), &secret);
    assert_eq!(
        header_algorithm(&Token::new(signed.clone())).as_deref(),
        Some("HS512")
    );
    let expected = match time_error(&claims) {
        Some(error) => Err(error),
        None => Ok(claims.clone()),
    };
    let outcome = verify(&Token::new(signed.clone()), &secret, NOW);
    assert_eq!(outcome, expected, "{signed}");
    if let Ok(verified) = &outcome {
        assert_eq!(username_from_claims(verified), username_rule(verified));
    }

    let index = usize::from(*position) % signed.len();
    let mut bytes = signed.clone().into_bytes();
    let mut new = replacement & 0x7f;
    if new == bytes[index] {
        new = (new + 1) & 0x7f;
    }
    bytes[index] = new;
    let changed = String::from_utf8(bytes).expect("ASCII stays UTF-8");
    let outcome = verify(&Token::new(changed.clone()), &secret, NOW);
    let signature_at = signed.rfind('.').expect("three segments") + 1;
    let same_signature = index >= signature_at
        && new != b'.'
        && decode_url_nopad(&changed[signature_at..]) == decode_url_nopad(&signed[signature_at..]);
    if same_signature {
        assert_eq!(outcome, expected, "{changed} decodes to the same signature");
    } else {
        assert!(
            outcome.is_err(),
            "{signed} changed at {index} to {changed} verified"
        );
    }
});

/// The claims to sign, as `mode` says.
fn claims(mode: u8, text: &str, times: [u8; 3]) -> Map<String, Value> {
    if mode & 0x40 != 0
        && let Ok(Value::Object(object)) = serde_json::from_str::<Value>(text)
    {
        return object;
    }
    let mut claims = Map::new();
    let username = if mode & 0x20 != 0 {
        json!(text.len())
    } else {
        json!(text)
    };
    claims.insert("username".into(), username);
    let half = if mode & 0x10 != 0 { 0.5 } else { 0.0 };
    for (bit, (name, delta)) in ["exp", "iat", "nbf"].into_iter().zip(times).enumerate() {
        if mode & (1 << bit) != 0 {
            let at = NOW + i64::from(delta as i8);
            let value = if half == 0.0 {
                json!(at)
            } else {
                json!(at as f64 + half)
            };
            claims.insert(name.into(), value);
        }
    }
    if mode & 0x08 != 0 {
        claims.insert("exp".into(), json!(0));
    }
    claims
}

/// golang-jwt v4's `MapClaims.Valid` at NOW: an absent claim or 0 passes; other numbers
/// count in whole seconds; anything else fails; the last failure is the one reported.
fn time_error(claims: &Map<String, Value>) -> Option<JwtError> {
    let holds = |name: &str, test: fn(f64) -> bool| match claims.get(name) {
        None => true,
        Some(Value::Number(number)) => {
            let seconds = number.as_f64().unwrap_or(f64::NAN);
            seconds == 0.0 || test(seconds.floor())
        }
        Some(_) => false,
    };
    let mut error = None;
    if !holds("exp", |exp| (NOW as f64) < exp) {
        error = Some(JwtError::Expired);
    }
    if !holds("iat", |iat| (NOW as f64) >= iat) {
        error = Some(JwtError::UsedBeforeIssued);
    }
    if !holds("nbf", |nbf| (NOW as f64) >= nbf) {
        error = Some(JwtError::NotValidYet);
    }
    error
}

/// Kapacitor's rules after the parse: `exp` a number above zero, then `username` a
/// non-empty string.
fn username_rule(claims: &Map<String, Value>) -> Result<String, ClaimsError> {
    match claims.get("exp").and_then(Value::as_f64) {
        Some(exp) if exp > 0.0 => {}
        _ => return Err(ClaimsError::ExpirationRequired),
    }
    match claims.get("username") {
        Some(Value::String(name)) if !name.is_empty() => Ok(name.clone()),
        Some(Value::String(_)) => Err(ClaimsError::UsernameEmpty),
        _ => Err(ClaimsError::UsernameNotString),
    }
}

fn assert_documented(error: &JwtError) {
    let text = error.to_string();
    let documented = TEXTS.contains(&text.as_str())
        || PREFIXES.iter().any(|prefix| text.starts_with(prefix))
        || OTHER_METHODS
            .iter()
            .any(|method| text == format!("unexpected signing method: {method}"));
    assert!(documented, "undocumented refusal {text:?}");
}
