//! Mutual HMAC-SHA256 challenge-response over a shared secret.
//!
//! Each side sends a random nonce; each proves knowledge of the secret with
//! HMAC(secret, label || client_nonce || server_nonce), with a different
//! label per role so one side's proof can never be replayed as the other's.
//! The secret itself never crosses the wire.

use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};
use thiserror::Error;

pub const NONCE_LEN: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Sender,
    Receiver,
}

impl Role {
    fn label(self) -> &'static [u8] {
        match self {
            Role::Sender => b"transbench/1 sender proof",
            Role::Receiver => b"transbench/1 receiver proof",
        }
    }
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum AuthError {
    #[error("the shared secret is empty")]
    EmptySecret,
    #[error("proof is not valid hex")]
    BadEncoding,
    #[error("proof does not match: the two sides hold different secrets")]
    Mismatch,
}

/// A shared secret, as read from a file or the environment.
#[derive(Clone)]
pub struct Secret(hmac::Key);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl Secret {
    /// Surrounding whitespace is ignored, so a file written by `echo` works.
    pub fn new(bytes: &[u8]) -> Result<Self, AuthError> {
        let trimmed = bytes.trim_ascii();
        if trimmed.is_empty() {
            return Err(AuthError::EmptySecret);
        }
        Ok(Secret(hmac::Key::new(hmac::HMAC_SHA256, trimmed)))
    }

    fn tag(&self, role: Role, client_nonce: &[u8], server_nonce: &[u8]) -> hmac::Tag {
        let mut ctx = hmac::Context::with_key(&self.0);
        ctx.update(role.label());
        ctx.update(client_nonce);
        ctx.update(server_nonce);
        ctx.sign()
    }

    /// The proof `role` sends, hex-encoded.
    pub fn prove(&self, role: Role, client_nonce: &[u8], server_nonce: &[u8]) -> String {
        to_hex(self.tag(role, client_nonce, server_nonce).as_ref())
    }

    /// Checks a proof that claims to come from `role` (constant time).
    pub fn verify(
        &self,
        role: Role,
        client_nonce: &[u8],
        server_nonce: &[u8],
        proof_hex: &str,
    ) -> Result<(), AuthError> {
        let proof = from_hex(proof_hex).ok_or(AuthError::BadEncoding)?;
        let mut msg = Vec::with_capacity(64 + client_nonce.len() + server_nonce.len());
        msg.extend_from_slice(role.label());
        msg.extend_from_slice(client_nonce);
        msg.extend_from_slice(server_nonce);
        hmac::verify(&self.0, &msg, &proof).map_err(|_| AuthError::Mismatch)
    }
}

pub fn random_nonce() -> [u8; NONCE_LEN] {
    let mut nonce = [0u8; NONCE_LEN];
    SystemRandom::new()
        .fill(&mut nonce)
        .expect("the OS random source is available");
    nonce
}

pub fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn from_hex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 || !s.is_ascii() {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn right_secret_verifies_wrong_one_does_not() {
        let a = Secret::new(b"hunter2\n").unwrap();
        let same = Secret::new(b"  hunter2").unwrap();
        let other = Secret::new(b"hunter3").unwrap();
        let (c, s) = (random_nonce(), random_nonce());
        let proof = a.prove(Role::Sender, &c, &s);
        assert_eq!(same.verify(Role::Sender, &c, &s, &proof), Ok(()));
        assert_eq!(
            other.verify(Role::Sender, &c, &s, &proof),
            Err(AuthError::Mismatch)
        );
    }

    #[test]
    fn proofs_bind_role_and_nonces() {
        let k = Secret::new(b"k").unwrap();
        let (c, s) = (random_nonce(), random_nonce());
        let proof = k.prove(Role::Receiver, &c, &s);
        assert_eq!(k.verify(Role::Sender, &c, &s, &proof), Err(AuthError::Mismatch));
        assert_eq!(k.verify(Role::Receiver, &s, &c, &proof), Err(AuthError::Mismatch));
        assert_eq!(
            k.verify(Role::Receiver, &c, &s, "zz"),
            Err(AuthError::BadEncoding)
        );
    }

    #[test]
    fn empty_secret_is_refused() {
        assert_eq!(Secret::new(b" \n").unwrap_err(), AuthError::EmptySecret);
    }

    #[test]
    fn hex_round_trips() {
        let bytes = [0u8, 1, 0xab, 0xff];
        assert_eq!(from_hex(&to_hex(&bytes)).unwrap(), bytes);
        assert!(from_hex("abc").is_none());
        assert!(from_hex("é1").is_none());
    }
}
