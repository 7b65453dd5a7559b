//! Passwords: checking one against the meta user document's bcrypt hash, hashing one
//! for the cache, and the keyed proofs the cache keeps instead of passwords (SPEC §4,
//! password check and cache).
//!
//! A hash comes from the meta node, so it is untrusted input: it is checked for bcrypt's
//! exact shape before bcrypt ever sees it, and a malformed one is an error, never a
//! panic. This file never stores, logs or compares a password in variable time;
//! `Password` and `Proof` have no `Display` and a `Debug` that prints `***`. The proof
//! key comes in from the caller; the only randomness drawn here is a bcrypt salt in
//! `hash_bcrypt`, and `hash_bcrypt_with_salt` does the same work with a given salt.

use std::fmt;

use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};

/// A password exactly as the client sent it.
#[derive(Clone)]
pub struct Password(String);

impl Password {
    pub fn new(password: String) -> Self {
        Self(password)
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("***")
    }
}

/// The meta user document's `hash` is not a bcrypt hash kapauth accepts. The hash itself
/// never appears in the message, since it is a secret too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MalformedHash;

impl fmt::Display for MalformedHash {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(
            "the user's password hash is not a bcrypt hash ($2a$, $2b$ or $2y$, cost 04 to 31, 60 characters)",
        )
    }
}

impl std::error::Error for MalformedHash {}

/// Why `hash_bcrypt` could not hash a password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashError {
    /// The cost is outside bcrypt's range of 4 to 31.
    CostOutOfRange(u32),
    /// The password has more than 72 bytes, and bcrypt would silently ignore its tail.
    PasswordTooLong,
    /// The operating system's random generator failed to give a salt.
    Randomness,
}

impl fmt::Display for HashError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::CostOutOfRange(cost) => {
                write!(formatter, "bcrypt cost {cost} is out of range; use 4 to 31")
            }
            Self::PasswordTooLong => formatter.write_str(
                "a password of more than 72 bytes cannot be hashed with bcrypt without losing its end",
            ),
            Self::Randomness => {
                formatter.write_str("the system random generator failed to give a bcrypt salt")
            }
        }
    }
}

impl std::error::Error for HashError {}

/// Checks `password` against the bcrypt `hash` of a meta user document.
///
/// `Ok(false)` is a wrong password. `Err(MalformedHash)` means the hash is not 60 ASCII
/// characters of the form `$2a$`/`$2b$`/`$2y$`, two-digit cost 04 to 31, `$`, then 53
/// characters of bcrypt's alphabet `./A-Za-z0-9`; such a hash never reaches bcrypt.
/// Like Go's `bcrypt.CompareHashAndPassword`, which Kapacitor uses, only the first 72
/// bytes of the password count.
pub fn verify_bcrypt(password: &Password, hash: &str) -> Result<bool, MalformedHash> {
    if !is_well_formed_bcrypt(hash) {
        return Err(MalformedHash);
    }
    bcrypt::verify(password.as_str(), hash).map_err(|_| MalformedHash)
}

/// The cost of a well-formed bcrypt hash, or `None` for anything else (an LDAP user's
/// empty hash, a malformed one).
pub fn bcrypt_cost(hash: &str) -> Option<u32> {
    if !is_well_formed_bcrypt(hash) {
        return None;
    }
    hash.get(4..6)?.parse().ok()
}

/// Hashes `password` with bcrypt at `cost` and a fresh random salt, in the `$2a$` form
/// InfluxDB Enterprise writes.
///
/// This is the one function here that draws randomness, because a salt must be new for
/// every hash; everything it decides is in `hash_bcrypt_with_salt`, which tests replay.
pub fn hash_bcrypt(password: &Password, cost: u32) -> Result<String, HashError> {
    let mut salt = [0u8; 16];
    SystemRandom::new()
        .fill(&mut salt)
        .map_err(|_| HashError::Randomness)?;
    hash_bcrypt_with_salt(password, cost, salt)
}

/// The longest password bcrypt reads in full.
pub const MAX_PASSWORD_BYTES: usize = 72;

/// Hashes `password` with bcrypt at `cost` and the given `salt`, in the `$2a$` form.
///
/// Passwords over 72 bytes are refused rather than truncated: a truncated hash would
/// accept any password that shares the first 72 bytes.
pub fn hash_bcrypt_with_salt(
    password: &Password,
    cost: u32,
    salt: [u8; 16],
) -> Result<String, HashError> {
    if !(MIN_COST..=MAX_COST).contains(&cost) {
        return Err(HashError::CostOutOfRange(cost));
    }
    // Go's bcrypt, which InfluxDB Enterprise uses, refuses more than 72 bytes and hashes
    // exactly 72; the crate's non-truncating variant would refuse 72 too.
    if password.as_str().len() > MAX_PASSWORD_BYTES {
        return Err(HashError::PasswordTooLong);
    }
    bcrypt::hash_with_salt(password.as_str(), cost, salt)
        .map(|parts| parts.format_for_version(bcrypt::Version::TwoA))
        .map_err(|error| match error {
            bcrypt::BcryptError::CostNotAllowed(cost) => HashError::CostOutOfRange(cost),
            _ => HashError::PasswordTooLong,
        })
}

/// The per-process key of the cache's password proofs (HMAC-SHA256).
#[derive(Clone)]
pub struct ProofKey(hmac::Key);

/// A keyed hash of a username and password, kept by the cache instead of the password.
#[derive(Clone)]
pub struct Proof(hmac::Tag);

impl ProofKey {
    /// Builds the key from 32 random bytes that the caller draws once per process (with
    /// `ring::rand::SystemRandom`), so proofs are worthless outside this process.
    pub fn from_bytes(bytes: &[u8; 32]) -> Self {
        Self(hmac::Key::new(hmac::HMAC_SHA256, bytes))
    }

    /// The proof that `username` logged in with `password`.
    pub fn prove(&self, username: &str, password: &Password) -> Proof {
        Proof(hmac::sign(&self.0, &proof_message(username, password)))
    }

    /// Whether `proof` was made by `prove` for this `username` and `password`; compared
    /// in constant time by `ring::hmac::verify`.
    pub fn matches(&self, proof: &Proof, username: &str, password: &Password) -> bool {
        hmac::verify(
            &self.0,
            &proof_message(username, password),
            proof.0.as_ref(),
        )
        .is_ok()
    }
}

impl fmt::Debug for ProofKey {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("***")
    }
}

impl fmt::Debug for Proof {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("***")
    }
}

const MIN_COST: u32 = 4;
const MAX_COST: u32 = 31;

/// bcrypt's own base64 alphabet, which differs from RFC 4648's.
fn is_bcrypt_alphabet(byte: u8) -> bool {
    byte == b'.' || byte == b'/' || byte.is_ascii_alphanumeric()
}

fn is_well_formed_bcrypt(hash: &str) -> bool {
    // Every byte is matched against ASCII below, so a multi-byte character anywhere
    // makes the hash malformed instead of splitting a character.
    let [b'$', b'2', version, b'$', tens, units, b'$', encoded @ ..] = hash.as_bytes() else {
        return false;
    };
    if !matches!(version, b'a' | b'b' | b'y') || !tens.is_ascii_digit() || !units.is_ascii_digit() {
        return false;
    }
    let cost = u32::from(tens - b'0') * 10 + u32::from(units - b'0');
    (MIN_COST..=MAX_COST).contains(&cost)
        && encoded.len() == 53
        && encoded.iter().copied().all(is_bcrypt_alphabet)
}

/// The proof's message: each part preceded by its length, so that no two different
/// (username, password) pairs, such as ("ab", "c") and ("a", "bc"), share a message.
fn proof_message(username: &str, password: &Password) -> Vec<u8> {
    let password = password.as_str().as_bytes();
    let mut message = Vec::with_capacity(16 + username.len() + password.len());
    for part in [username.as_bytes(), password] {
        message.extend_from_slice(&(part.len() as u64).to_be_bytes());
        message.extend_from_slice(part);
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    const SALT: [u8; 16] = *b"kapauth-testsalt";

    fn password(text: &str) -> Password {
        Password::new(text.to_owned())
    }

    /// What `verify_bcrypt` says about `candidate` against `hash`.
    fn check(candidate: &str, hash: &str, expected: Result<bool, MalformedHash>) {
        assert_eq!(
            verify_bcrypt(&password(candidate), hash),
            expected,
            "{hash:?}"
        );
    }

    /// Whether a proof made for (`username`, `secret`) matches (`other_user`, `other_secret`).
    fn check_proof(made_for: (&str, &str), presented: (&str, &str), expected: bool) {
        let key = ProofKey::from_bytes(&[7; 32]);
        let proof = key.prove(made_for.0, &password(made_for.1));
        assert_eq!(
            key.matches(&proof, presented.0, &password(presented.1)),
            expected,
            "{made_for:?} against {presented:?}"
        );
    }

    fn valid_hash_with(prefix: &str, rest: &str) -> String {
        format!("{prefix}{rest}")
    }

    #[test]
    fn published_openbsd_vectors_verify() {
        check(
            "U*U",
            "$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW",
            Ok(true),
        );
        check(
            "U*U*",
            "$2a$05$CCCCCCCCCCCCCCCCCCCCC.VGOzA784oUp/Z0DY336zx7pLYAy0lwK",
            Ok(true),
        );
        check(
            "",
            "$2a$05$CCCCCCCCCCCCCCCCCCCCC.7uG0VCzI2bS7j6ymqJi9CdcdxiRTWNy",
            Ok(true),
        );
        check(
            "U*U*",
            "$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW",
            Ok(false),
        );
    }

    #[test]
    fn right_and_wrong_passwords_against_a_cost_4_hash() {
        let hash = hash_bcrypt_with_salt(&password("s3cret"), 4, SALT).unwrap_or_default();
        check("s3cret", &hash, Ok(true));
        check("s3cret ", &hash, Ok(false));
        check("S3cret", &hash, Ok(false));
        check("", &hash, Ok(false));
        for version in ["$2b$", "$2y$"] {
            check("s3cret", &hash.replacen("$2a$", version, 1), Ok(true));
        }
    }

    #[test]
    fn fresh_salts_give_different_hashes_of_the_same_password() {
        let first = hash_bcrypt(&password("pw"), 4).unwrap_or_default();
        let second = hash_bcrypt(&password("pw"), 4).unwrap_or_default();
        assert_ne!(first, second);
        check("pw", &first, Ok(true));
        check("pw", &second, Ok(true));
        assert_eq!(
            hash_bcrypt(&password("pw"), 3),
            Err(HashError::CostOutOfRange(3))
        );
    }

    #[test]
    fn the_cost_is_read_only_from_well_formed_hashes() {
        let hash = hash_bcrypt_with_salt(&Password::new("pw".into()), 5, [1; 16]).unwrap();
        assert_eq!(bcrypt_cost(&hash), Some(5));
        assert_eq!(bcrypt_cost(""), None);
        assert_eq!(bcrypt_cost("$2a$99$"), None);
        assert_eq!(bcrypt_cost(&hash.replace("$05$", "$32$")), None);
    }

    #[test]
    fn hashes_are_written_in_the_2a_form_at_the_requested_cost() {
        let hash = hash_bcrypt_with_salt(&password("pw"), 4, SALT).unwrap_or_default();
        assert!(hash.starts_with("$2a$04$"), "{hash}");
        assert_eq!(hash.len(), 60);
        assert!(is_well_formed_bcrypt(&hash));
    }

    #[test]
    fn hashing_refuses_bad_costs_and_passwords_bcrypt_would_truncate() {
        assert_eq!(
            hash_bcrypt_with_salt(&password("pw"), 3, SALT),
            Err(HashError::CostOutOfRange(3))
        );
        assert_eq!(
            hash_bcrypt_with_salt(&password("pw"), 32, SALT),
            Err(HashError::CostOutOfRange(32))
        );
        assert_eq!(
            hash_bcrypt_with_salt(&password(&"x".repeat(73)), 4, SALT),
            Err(HashError::PasswordTooLong)
        );
        let hash = hash_bcrypt_with_salt(&password(&"x".repeat(72)), 4, SALT).unwrap();
        assert_eq!(verify_bcrypt(&password(&"x".repeat(72)), &hash), Ok(true));
        assert_eq!(verify_bcrypt(&password(&"x".repeat(71)), &hash), Ok(false));
    }

    #[test]
    fn malformed_hashes_are_errors_and_never_reach_bcrypt() {
        let body = "CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW";
        check("U*U", &valid_hash_with("$2a$05$", body), Ok(true));
        check("U*U", "", Err(MalformedHash));
        check("U*U", "plaintext", Err(MalformedHash));
        check(
            "U*U",
            &valid_hash_with("$2a$05$", &body[1..]),
            Err(MalformedHash),
        );
        check(
            "U*U",
            &valid_hash_with("$2a$05$", &format!("{body}C")),
            Err(MalformedHash),
        );
        check("U*U", &valid_hash_with("$2x$05$", body), Err(MalformedHash));
        check("U*U", &valid_hash_with("$2$05$C", body), Err(MalformedHash));
        check("U*U", &valid_hash_with("$1a$05$", body), Err(MalformedHash));
        check("U*U", &valid_hash_with("$2A$05$", body), Err(MalformedHash));
        check("U*U", &valid_hash_with("$2a$03$", body), Err(MalformedHash));
        check("U*U", &valid_hash_with("$2a$32$", body), Err(MalformedHash));
        check("U*U", &valid_hash_with("$2a$00$", body), Err(MalformedHash));
        check("U*U", &valid_hash_with("$2a$99$", body), Err(MalformedHash));
        check("U*U", &valid_hash_with("$2a$5$C", body), Err(MalformedHash));
        check("U*U", &valid_hash_with("$2a$+5$", body), Err(MalformedHash));
        check("U*U", &valid_hash_with("$2a$05!", body), Err(MalformedHash));
        check(
            "U*U",
            &valid_hash_with("$2a$05$", &body.replacen('C', "+", 1)),
            Err(MalformedHash),
        );
        check(
            "U*U",
            &valid_hash_with("$2a$05$", &body.replacen('C', "$", 1)),
            Err(MalformedHash),
        );
        check(
            "U*U",
            &valid_hash_with("$2a$05$", &body.replacen('C', "=", 1)),
            Err(MalformedHash),
        );
    }

    #[test]
    fn a_multi_byte_character_in_a_60_byte_hash_is_malformed_without_panicking() {
        // 51 alphabet characters and one two-byte character fill the 53 bytes after the
        // prefix, so the hash has exactly 60 bytes but is not ASCII.
        let hash = format!("$2a$05${}é", "C".repeat(51));
        assert_eq!(hash.len(), 60);
        check("U*U", &hash, Err(MalformedHash));
        let hash = format!("$2a$0é{}", "C".repeat(53));
        assert_eq!(hash.len(), 60);
        check("U*U", &hash, Err(MalformedHash));
    }

    #[test]
    fn malformed_hash_message_never_contains_the_hash() {
        let text = MalformedHash.to_string();
        assert!(!text.contains("CCCC"));
        assert_eq!(text, text.trim_end_matches('.'));
    }

    #[test]
    fn proofs_match_only_the_same_username_and_password() {
        check_proof(("alice", "s3cret"), ("alice", "s3cret"), true);
        check_proof(("alice", "s3cret"), ("alice", "s3cret!"), false);
        check_proof(("alice", "s3cret"), ("alice", ""), false);
        check_proof(("alice", "s3cret"), ("bob", "s3cret"), false);
        check_proof(("ab", "c"), ("a", "bc"), false);
        check_proof(("a", "bc"), ("ab", "c"), false);
        check_proof(("", ""), ("", ""), true);
    }

    #[test]
    fn proofs_from_another_key_never_match() {
        let proof = ProofKey::from_bytes(&[1; 32]).prove("alice", &password("s3cret"));
        let other = ProofKey::from_bytes(&[2; 32]);
        assert!(!other.matches(&proof, "alice", &password("s3cret")));
    }

    #[test]
    fn secrets_never_print_themselves() {
        assert_eq!(format!("{:?}", password("hunter2")), "***");
        let key = ProofKey::from_bytes(&[0; 32]);
        assert_eq!(format!("{key:?}"), "***");
        assert_eq!(
            format!("{:?}", key.prove("alice", &password("hunter2"))),
            "***"
        );
    }
}
