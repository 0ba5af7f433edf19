//! The control handshake as each side reads it: the input's first byte
//! picks the side (even: the receiver, odd: the sender), the rest is the
//! frames its peer sent. Every step decodes what the agents decode, with
//! the public entry points they call (`ControlMsg`, `auth::from_hex`,
//! `Secret::verify`, `FrameMac::open`); the secret and this side's nonce
//! are fixed ([`SECRET`], [`CLIENT_NONCE`], [`SERVER_NONCE`]), so an input
//! can carry the right proofs and tags (the seeds do) and reach the
//! authenticated frames after the handshake.
//!
//! Holds: no panic; a hex string that decodes re-encodes to itself (in
//! lower case); a proof made with the secret verifies and a verified proof
//! is that proof; authenticated frames open only in order, and any payload
//! the peer seals opens as itself.

use transbench_wire::auth::{from_hex, to_hex, FrameMac, Role, Secret, NONCE_LEN, TAG_LEN};
use transbench_wire::control::CONTROL_FRAMING;
use transbench_wire::{delivery, ControlMsg};

/// The shared secret both sides hold.
pub const SECRET: &[u8] = b"fuzz secret";
/// The nonce a sender under test sends in its hello.
pub const CLIENT_NONCE: [u8; NONCE_LEN] = [0xc1; NONCE_LEN];
/// The nonce a receiver under test sends in its challenge.
pub const SERVER_NONCE: [u8; NONCE_LEN] = [0x5e; NONCE_LEN];

pub fn run(data: &[u8]) {
    let Some((&side, stream)) = data.split_first() else {
        return;
    };
    let mut frames = Frames(stream);
    let secret = Secret::new(SECRET).expect("the secret is not empty");
    if side % 2 == 0 {
        receiver(&mut frames, &secret);
    } else {
        sender(&mut frames, &secret);
    }
}

/// Frames off the control connection, as `ControlChannel::recv` reads
/// them: a length prefix within the control limit, then the payload.
struct Frames<'a>(&'a [u8]);

impl<'a> Frames<'a> {
    fn next(&mut self) -> Option<&'a [u8]> {
        let (payload, used) = CONTROL_FRAMING.split(self.0).ok()??;
        self.0 = &self.0[used..];
        Some(payload)
    }
}

/// The receiver: a hello with the sender's nonce, an auth with its proof,
/// then authenticated frames.
fn receiver(frames: &mut Frames, secret: &Secret) {
    let Some(Ok(ControlMsg::Hello { client_nonce, .. })) = frames.next().map(ControlMsg::decode) else {
        return;
    };
    let Some(client_nonce) = hex(&client_nonce).filter(|n| n.len() == NONCE_LEN) else {
        return;
    };
    proofs(secret, &client_nonce, &SERVER_NONCE);
    let Some(Ok(ControlMsg::Auth { client_proof, .. })) = frames.next().map(ControlMsg::decode) else {
        return;
    };
    let Some(proof) = client_proof else { return };
    if !verified(secret, Role::Sender, &client_nonce, &SERVER_NONCE, &proof) {
        return;
    }
    authenticated(frames, secret, Role::Receiver, &client_nonce, &SERVER_NONCE);
}

/// The sender: a challenge with the receiver's nonce, a welcome with its
/// proof (the sender has sent its own by then), then authenticated frames.
fn sender(frames: &mut Frames, secret: &Secret) {
    let Some(Ok(ControlMsg::Challenge { server_nonce, .. })) = frames.next().map(ControlMsg::decode) else {
        return;
    };
    let Some(server_nonce) = hex(&server_nonce).filter(|n| n.len() == NONCE_LEN) else {
        return;
    };
    proofs(secret, &CLIENT_NONCE, &server_nonce);
    let Some(Ok(ControlMsg::Welcome { server_proof, .. })) = frames.next().map(ControlMsg::decode) else {
        return;
    };
    let Some(proof) = server_proof else { return };
    if !verified(secret, Role::Receiver, &CLIENT_NONCE, &server_nonce, &proof) {
        return;
    }
    authenticated(frames, secret, Role::Sender, &CLIENT_NONCE, &server_nonce);
}

/// A hex string as the agents decode nonces and proofs.
fn hex(s: &str) -> Option<Vec<u8>> {
    let bytes = from_hex(s)?;
    assert_eq!(
        to_hex(&bytes),
        s.to_ascii_lowercase(),
        "hex decodes to what encodes back to it"
    );
    Some(bytes)
}

/// A proof made with the secret verifies for its role, and only for it.
fn proofs(secret: &Secret, c: &[u8], s: &[u8]) {
    let proof = secret.prove(Role::Sender, c, s);
    assert_eq!(proof.len(), 2 * TAG_LEN);
    assert!(secret.verify(Role::Sender, c, s, &proof).is_ok());
    assert!(secret.verify(Role::Receiver, c, s, &proof).is_err());
}

/// Whether `proof` proves the secret for `role`; one that does is the
/// proof the secret makes.
fn verified(secret: &Secret, role: Role, c: &[u8], s: &[u8], proof: &str) -> bool {
    let _ = hex(proof);
    let ok = secret.verify(role, c, s, proof).is_ok();
    if ok {
        assert_eq!(proof.to_ascii_lowercase(), secret.prove(role, c, s));
    }
    ok
}

/// After the handshake: every frame opens under the session key, or is
/// the peer's refusal sent before it had the key (as
/// `ControlChannel::recv` takes them).
fn authenticated(frames: &mut Frames, secret: &Secret, me: Role, c: &[u8], s: &[u8]) {
    let peer_role = match me {
        Role::Sender => Role::Receiver,
        Role::Receiver => Role::Sender,
    };
    let mut mac = FrameMac::new(secret, me, c, s);
    // A second session: the peer seals each payload the input holds, as
    // if it had sent it, so what follows a tag is decoded too.
    let mut peer = FrameMac::new(secret, peer_role, c, s);
    let mut mine = FrameMac::new(secret, me, c, s);
    let mut opened = 0u32;
    while let Some(frame) = frames.next() {
        match mac.open(frame) {
            Ok(payload) => {
                opened += 1;
                assert_eq!(payload.len() + TAG_LEN, frame.len());
                // Never twice: the counter moved on.
                assert!(FrameMac::new(secret, me, c, s).open(frame).is_ok() == (opened == 1));
                message(payload);
            }
            Err(_) => {
                if let Ok(msg @ ControlMsg::Refused { .. }) = ControlMsg::decode(frame) {
                    message_checked(&msg);
                }
            }
        }
        let sealed = peer.seal(frame);
        assert_eq!(
            mine.open(&sealed),
            Ok(frame),
            "what the peer seals opens as itself"
        );
        message(frame);
    }
}

fn message(payload: &[u8]) {
    if let Ok(msg) = ControlMsg::decode(payload) {
        message_checked(&msg);
    }
}

/// What a side does with a message's contents.
fn message_checked(msg: &ControlMsg) {
    if let ControlMsg::Deliveries { records, .. } = msg {
        let _ = delivery::decode(records);
    }
    assert_eq!(ControlMsg::decode(&msg.to_payload()).as_ref().ok(), Some(msg));
}
