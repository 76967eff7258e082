//! The secrets of one loopback sign-in: a PKCE-style verifier and its S256
//! challenge (RFC 7636: `base64url(sha256(verifier))`), and a `state` that
//! ties the browser's answer to this run of `lease login`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Random bytes in the verifier (43 characters once encoded).
const VERIFIER_BYTES: usize = 32;
/// Random bytes in the state (43 characters once encoded).
const STATE_BYTES: usize = 32;

/// The verifier, challenge and state of one sign-in.
pub struct Secrets {
    /// Sent only to `POST /auth/cli/token`, at the end.
    pub verifier: String,
    /// `base64url(sha256(verifier))`, sent with the browser's URL.
    pub challenge: String,
    /// Comes back with the code; anything else is not our answer.
    pub state: String,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secrets")
            .field("challenge", &self.challenge)
            .finish_non_exhaustive()
    }
}

impl Secrets {
    /// Fresh secrets from the operating system's random source.
    pub fn new() -> Secrets {
        let verifier = random_text(VERIFIER_BYTES);
        Secrets {
            challenge: challenge_of(&verifier),
            verifier,
            state: random_text(STATE_BYTES),
        }
    }
}

/// `bytes` random bytes, base64url-encoded.
fn random_text(bytes: usize) -> String {
    let mut buffer = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buffer);
    base64url(&buffer)
}

/// The S256 challenge of `verifier`.
pub fn challenge_of(verifier: &str) -> String {
    base64url(&Sha256::digest(verifier.as_bytes()))
}

/// Base64 with the URL-safe alphabet and no padding (RFC 4648 §5).
pub fn base64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Whether `a` and `b` are equal, in time that does not depend on where
/// they differ.
pub fn same(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_challenge_is_rfc_7636_s256() {
        // RFC 7636, appendix B.
        assert_eq!(
            challenge_of("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn secrets_are_fresh_and_the_sizes_the_server_expects() {
        let a = Secrets::new();
        let b = Secrets::new();
        assert_ne!(a.verifier, b.verifier);
        assert_ne!(a.state, b.state);
        assert_eq!(a.verifier.len(), 43);
        assert_eq!(a.challenge.len(), 43);
        assert!((16..=128).contains(&a.state.len()));
        let url_safe = |s: &str| {
            s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        };
        assert!(url_safe(&a.verifier) && url_safe(&a.state) && url_safe(&a.challenge));
        assert_eq!(a.challenge, challenge_of(&a.verifier));
        assert!(!format!("{a:?}").contains(&a.verifier));
    }

    #[test]
    fn same_compares_whole_strings() {
        assert!(same("abc", "abc"));
        assert!(!same("abc", "abd"));
        assert!(!same("abc", "ab"));
        assert!(same("", ""));
    }
}
