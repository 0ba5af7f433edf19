//! Fixed-size records packed back to back and carried as base64 in
//! control frames (delivery records, processed counts): the one way both
//! are read back.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum PackedError {
    #[error("{what} are not base64: {detail}")]
    Base64 { what: &'static str, detail: String },
    #[error("{what} of {len} bytes are not a whole number of {record_len}-byte records")]
    Length {
        what: &'static str,
        len: usize,
        record_len: usize,
    },
}

pub(crate) fn encode(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

/// `text`'s records of `record_len` bytes each; `what` names them in an
/// error.
pub(crate) fn decode<T>(
    text: &str,
    record_len: usize,
    what: &'static str,
    record: impl Fn(&[u8]) -> T,
) -> Result<Vec<T>, PackedError> {
    let bytes = STANDARD.decode(text).map_err(|e| PackedError::Base64 {
        what,
        detail: e.to_string(),
    })?;
    if bytes.len() % record_len != 0 {
        return Err(PackedError::Length {
            what,
            len: bytes.len(),
            record_len,
        });
    }
    Ok(bytes.chunks_exact(record_len).map(record).collect())
}
