//! Control frames: the input as bytes off a control connection (frames
//! split one after another, as an agent reads them), and as one frame's
//! payload (the JSON).
//!
//! Holds: no panic; a length prefix is refused past the control limit; a
//! frame that decodes is whole and inside the input; a message that
//! decodes encodes to JSON that decodes to the same message, and splits
//! back from its own frame; delivery records and rr's processed counts round-trip.

use transbench_wire::control::CONTROL_FRAMING;
use transbench_wire::frame::PREFIX_LEN;
use transbench_wire::{delivery, processed, ControlMsg};

pub fn run(data: &[u8]) {
    let mut rest = data;
    loop {
        match ControlMsg::split(rest) {
            Ok(Some((msg, used))) => {
                assert!(
                    used > PREFIX_LEN && used <= rest.len(),
                    "{used} of {} bytes",
                    rest.len()
                );
                check(&msg);
                rest = &rest[used..];
            }
            // Incomplete: the prefix is fine, the payload not all there.
            Ok(None) => {
                if let Some(prefix) = rest.first_chunk::<PREFIX_LEN>() {
                    let len = CONTROL_FRAMING
                        .decode_len(*prefix)
                        .expect("split took the prefix");
                    assert!(rest.len() < PREFIX_LEN + len);
                }
                break;
            }
            Err(_) => break,
        }
    }
    if let Some(prefix) = data.first_chunk::<PREFIX_LEN>() {
        if let Ok(len) = CONTROL_FRAMING.decode_len(*prefix) {
            assert!(len > 0 && len <= CONTROL_FRAMING.max_len as usize);
        }
    }
    if let Ok(msg) = ControlMsg::decode(data) {
        check(&msg);
    }
    if let Some(text) = crate::text(data) {
        records(text);
    }
}

/// What must hold of any message that decoded.
fn check(msg: &ControlMsg) {
    let payload = msg.to_payload();
    let back = ControlMsg::decode(&payload).unwrap_or_else(|e| {
        panic!(
            "{msg:?} encodes as {:?}, which does not decode: {e}",
            show(&payload)
        )
    });
    assert_eq!(&back, msg, "encoded as {:?}", show(&payload));
    // A message may encode longer than it came (defaults written out):
    // past the limit it has no frame, and that is an error, not a panic.
    let mut frame = Vec::new();
    if CONTROL_FRAMING.encode(&payload, &mut frame).is_ok() {
        let (again, used) = ControlMsg::split(&frame)
            .expect("an encoded frame splits")
            .expect("an encoded frame is whole");
        assert_eq!((&again, used), (msg, frame.len()));
    }
    assert!(!msg.name().is_empty());
    match msg {
        ControlMsg::Deliveries { records: text, .. } => records(text),
        ControlMsg::Processed { counts, .. } => processed_counts(counts),
        ControlMsg::Setup(setup) => {
            let _ = (setup.workload.kind(), setup.transport.capabilities());
        }
        _ => {}
    }
}

/// Delivery records, as the sender decodes a `deliveries` frame.
fn records(text: &str) {
    if let Ok(records) = delivery::decode(text) {
        assert!(
            records.len() * 20 <= text.len(),
            "20 bytes a record take more as base64"
        );
        let again = delivery::decode(&delivery::encode(&records)).expect("encoded records decode");
        assert_eq!(again, records);
    }
}

/// rr's per-id counts, as the sender decodes a `processed` frame.
fn processed_counts(text: &str) {
    if let Ok(counts) = processed::decode(text) {
        assert!(
            counts.len() * 3 <= text.len(),
            "3 bytes an id take more as base64"
        );
        let again = processed::decode(&processed::encode(&counts)).expect("encoded counts decode");
        assert_eq!(again, counts);
    }
}

fn show(bytes: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(bytes)
}
