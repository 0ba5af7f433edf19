//! Mutual HMAC-SHA256 challenge-response over a shared secret.
//!
//! Each side sends a random nonce; each proves knowledge of the secret with
//! HMAC(secret, label || client_nonce || server_nonce), with a different
//! label per role so one side's proof can never be replayed as the other's.
//! The secret itself never crosses the wire.
//!
//! After the handshake every control frame carries a [`FrameMac`] tag under
//! a session key bound to both nonces, so a party on the path can relay the
//! session but not forge, replay, reorder or reflect its frames (it could
//! otherwise swap the certificate fingerprint in `ready`).

use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};
use thiserror::Error;

pub const NONCE_LEN: usize = 32;
pub const TAG_LEN: usize = 32;

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
    #[error("control frame failed authentication (forged, replayed or reordered)")]
    Forged,
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

const SESSION_LABEL: &[u8] = b"transbench/1 session key";

/// Tags control frames in both directions of one authenticated session.
pub struct FrameMac {
    key: hmac::Key,
    role: Role,
    sent: u64,
    received: u64,
}

impl FrameMac {
    /// `role` is this side's; both sides derive the same session key.
    pub fn new(secret: &Secret, role: Role, client_nonce: &[u8], server_nonce: &[u8]) -> Self {
        let mut ctx = hmac::Context::with_key(&secret.0);
        ctx.update(SESSION_LABEL);
        ctx.update(client_nonce);
        ctx.update(server_nonce);
        FrameMac {
            key: hmac::Key::new(hmac::HMAC_SHA256, ctx.sign().as_ref()),
            role,
            sent: 0,
            received: 0,
        }
    }

    fn tag(&self, from: Role, counter: u64, payload: &[u8]) -> hmac::Tag {
        let mut ctx = hmac::Context::with_key(&self.key);
        ctx.update(from.label());
        ctx.update(&counter.to_be_bytes());
        ctx.update(payload);
        ctx.sign()
    }

    /// `payload` followed by its tag.
    pub fn seal(&mut self, payload: &[u8]) -> Vec<u8> {
        let tag = self.tag(self.role, self.sent, payload);
        self.sent += 1;
        let mut out = Vec::with_capacity(payload.len() + TAG_LEN);
        out.extend_from_slice(payload);
        out.extend_from_slice(tag.as_ref());
        out
    }

    /// The payload of a sealed frame from the peer, if its tag is right.
    pub fn open<'a>(&mut self, frame: &'a [u8]) -> Result<&'a [u8], AuthError> {
        let split = frame.len().checked_sub(TAG_LEN).ok_or(AuthError::Forged)?;
        let (payload, tag) = frame.split_at(split);
        let peer = match self.role {
            Role::Sender => Role::Receiver,
            Role::Receiver => Role::Sender,
        };
        let mut msg = Vec::with_capacity(64 + payload.len());
        msg.extend_from_slice(peer.label());
        msg.extend_from_slice(&self.received.to_be_bytes());
        msg.extend_from_slice(payload);
        hmac::verify(&self.key, &msg, tag).map_err(|_| AuthError::Forged)?;
        self.received += 1;
        Ok(payload)
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

/// Hex digits, two a byte, either case; anything else is `None`.
/// (`u8::from_str_radix` would take a sign too: "+f" as 0x0f.)
pub fn from_hex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    let digit = |b: u8| char::from(b).to_digit(16);
    s.as_bytes()
        .chunks_exact(2)
        .map(|pair| Some((digit(pair[0])? << 4 | digit(pair[1])?) as u8))
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

    fn session_pair() -> (FrameMac, FrameMac) {
        let k = Secret::new(b"k").unwrap();
        let (c, s) = (random_nonce(), random_nonce());
        (
            FrameMac::new(&k, Role::Sender, &c, &s),
            FrameMac::new(&k, Role::Receiver, &c, &s),
        )
    }

    #[test]
    fn sealed_frames_open_in_order_on_the_other_side() {
        let (mut sender, mut receiver) = session_pair();
        for msg in [&b"setup"[..], b"start", b"stop"] {
            let frame = sender.seal(msg);
            assert_eq!(receiver.open(&frame).unwrap(), msg);
        }
        let back = receiver.seal(b"report");
        assert_eq!(sender.open(&back).unwrap(), b"report");
    }

    #[test]
    fn forged_replayed_reflected_or_foreign_frames_fail() {
        let (mut sender, mut receiver) = session_pair();
        let first = sender.seal(br#"{"type":"ready","data_port":1}"#);
        let mut tampered = first.clone();
        tampered[20] ^= 1;
        assert_eq!(receiver.open(&tampered), Err(AuthError::Forged));
        assert!(receiver.open(&first).is_ok());
        assert_eq!(receiver.open(&first), Err(AuthError::Forged), "replay");
        // A frame sent back to its own author.
        let mine = receiver.seal(b"x");
        assert_eq!(receiver.open(&mine), Err(AuthError::Forged), "reflection");
        // Another session's key, same secret.
        let (mut other_sender, _) = session_pair();
        assert_eq!(sender.open(&other_sender.seal(b"x")), Err(AuthError::Forged));
        assert_eq!(sender.open(b"short"), Err(AuthError::Forged));
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
        assert_eq!(from_hex("ABcd").unwrap(), [0xab, 0xcd]);
        // Found by fuzzing: a sign is not a digit.
        assert!(from_hex("+f").is_none());
        assert!(from_hex("0+").is_none());
        assert!(from_hex("-0").is_none());
    }
}
