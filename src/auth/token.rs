//! The API token format: `ocl_` + 32 base62 characters of randomness (~190 bits) + a 6 character
//! base62 CRC-32 checksum of the random part.
//!
//! The checksum lets the server (and secret scanners) reject a mistyped or made-up token without
//! a lookup. Only the SHA-256 of the whole token is ever stored; the token itself is shown once.

use rand::Rng;
use sha2::{Digest, Sha256};

/// Prefix every claw token starts with.
pub const PREFIX: &str = "ocl_";
const RANDOM_LEN: usize = 32;
const CHECKSUM_LEN: usize = 6;
/// Length of a well-formed token.
pub const TOKEN_LEN: usize = PREFIX.len() + RANDOM_LEN + CHECKSUM_LEN;
const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// A SHA-256 digest of a token.
pub type TokenHash = [u8; 32];

/// Generates a new random token.
pub fn generate() -> String {
    let mut rng = rand::rng();
    let mut token = String::with_capacity(TOKEN_LEN);
    token.push_str(PREFIX);
    for _ in 0..RANDOM_LEN {
        token.push(BASE62[rng.random_range(0..BASE62.len())] as char);
    }
    let checksum = checksum(&token.as_bytes()[PREFIX.len()..]);
    token.push_str(std::str::from_utf8(&checksum).unwrap_or_default());
    token
}

fn checksum(random: &[u8]) -> [u8; CHECKSUM_LEN] {
    let mut n = crc32fast::hash(random);
    let mut out = [b'0'; CHECKSUM_LEN];
    for slot in out.iter_mut().rev() {
        *slot = BASE62[(n % 62) as usize];
        n /= 62;
    }
    out
}

/// True when `token` has the right prefix, length, alphabet and checksum.
pub fn is_well_formed(token: &str) -> bool {
    let bytes = token.as_bytes();
    if bytes.len() != TOKEN_LEN || !token.starts_with(PREFIX) {
        return false;
    }
    let body = &bytes[PREFIX.len()..];
    if !body.iter().all(u8::is_ascii_alphanumeric) {
        return false;
    }
    let (random, sum) = body.split_at(RANDOM_LEN);
    // Not secret: the checksum is public information derived from the token itself.
    checksum(random) == sum
}

/// SHA-256 of the token, as stored in Token manifests (hex) and looked up by the server.
pub fn hash(token: &str) -> TokenHash {
    Sha256::digest(token.as_bytes()).into()
}

/// Lower-case hex of a token hash, the form Token manifests carry.
pub fn hash_hex(token: &str) -> String {
    hex::encode(hash(token))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_are_well_formed_and_distinct() {
        let a = generate();
        let b = generate();
        assert!(a.starts_with("ocl_"));
        assert_eq!(a.len(), TOKEN_LEN);
        assert!(is_well_formed(&a), "{a}");
        assert_ne!(a, b);
    }

    #[test]
    fn a_single_changed_character_fails_the_checksum() {
        let token = generate();
        let mut bytes = token.clone().into_bytes();
        bytes[10] = if bytes[10] == b'a' { b'b' } else { b'a' };
        let typo = String::from_utf8(bytes).unwrap();
        assert!(!is_well_formed(&typo));
        assert!(!is_well_formed("ocl_short"));
        assert!(!is_well_formed(&token.replace("ocl_", "xyz_")));
    }

    #[test]
    fn hash_is_sha256_hex_of_the_token() {
        assert_eq!(
            hash_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
