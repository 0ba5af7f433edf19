//! The trial token: 8 random bytes the receiver makes for each trial and
//! hands its sender in `Ready`, over the authenticated control channel.
//! Data-plane traffic shows it before the receiver does any work for it:
//!
//! - every data message carries it in its header (bytes 24..32, see
//!   [`crate::header`]): the only proof a datagram can carry;
//! - every TCP or TLS data connection opens with it, before TLS and
//!   before the first message, so a stranger's connection costs neither a
//!   handshake nor a buffer;
//! - a QUIC connection's first destination connection ID starts with it
//!   (the client picks that ID, and the receiver sees it in the very first
//!   packet), so a stranger's Initial is dropped unanswered, before any
//!   handshake.
//!
//! It proves the traffic comes from whoever holds the control channel, to
//! a receiver that cannot tell by address (every local process on
//! 127.0.0.1 has the sender's address). It is no secret from someone who
//! can read the path: it travels in the clear, as the control channel
//! does (HMAC-tagged, not encrypted).

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

use crate::auth::{from_hex, to_hex};

pub const TOKEN_LEN: usize = 8;

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TrialToken([u8; TOKEN_LEN]);

impl TrialToken {
    /// A fresh token from the OS random source.
    pub fn random() -> Self {
        use ring::rand::{SecureRandom, SystemRandom};
        let mut bytes = [0u8; TOKEN_LEN];
        SystemRandom::new()
            .fill(&mut bytes)
            .expect("the OS random source is available");
        TrialToken(bytes)
    }

    pub const fn from_bytes(bytes: [u8; TOKEN_LEN]) -> Self {
        TrialToken(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; TOKEN_LEN] {
        &self.0
    }

    /// Whether `shown` is this token; takes as long whichever byte differs.
    pub fn matches(&self, shown: &[u8]) -> bool {
        shown.len() == TOKEN_LEN && self.0.iter().zip(shown).fold(0u8, |d, (a, b)| d | (a ^ b)) == 0
    }
}

impl fmt::Debug for TrialToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TrialToken({})", to_hex(&self.0))
    }
}

/// In control frames: hex, as nonces are.
impl Serialize for TrialToken {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&to_hex(&self.0))
    }
}

impl<'de> Deserialize<'de> for TrialToken {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        from_hex(&text)
            .and_then(|b| <[u8; TOKEN_LEN]>::try_from(b).ok())
            .map(TrialToken)
            .ok_or_else(|| serde::de::Error::custom(format!("a trial token is {TOKEN_LEN} bytes in hex")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_differ_and_match_only_themselves() {
        let (a, b) = (TrialToken::random(), TrialToken::random());
        assert_ne!(a, b);
        assert!(a.matches(a.as_bytes()));
        assert!(!a.matches(b.as_bytes()));
        assert!(!a.matches(&a.as_bytes()[..7]));
        assert!(!a.matches(&[]));
    }

    #[test]
    fn round_trips_as_hex_and_refuses_other_lengths() {
        let t = TrialToken::from_bytes([0, 1, 2, 3, 0xfc, 0xfd, 0xfe, 0xff]);
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(json, "\"00010203fcfdfeff\"");
        assert_eq!(serde_json::from_str::<TrialToken>(&json).unwrap(), t);
        assert!(serde_json::from_str::<TrialToken>("\"0001\"").is_err());
        assert!(serde_json::from_str::<TrialToken>("\"zz010203fcfdfeff\"").is_err());
    }
}
