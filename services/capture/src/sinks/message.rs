//! The message a batch travels as: its body (JSON, optionally gzip) and its attributes.

use super::EncodedBatch;
use pg2bq_core::wire::{WIRE_VERSION, attributes};
use std::io::Write;

/// Compression of message bodies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Compression {
    /// Plain JSON (`encoding` = `json`).
    None,
    /// Gzip-compressed JSON (`encoding` = `json+gzip`).
    Gzip,
}

impl Compression {
    /// The `encoding` attribute value.
    pub fn encoding(self) -> &'static str {
        match self {
            Compression::None => "json",
            Compression::Gzip => "json+gzip",
        }
    }

    /// The message body of `json`.
    pub fn apply(self, json: Vec<u8>) -> Vec<u8> {
        match self {
            Compression::None => json,
            Compression::Gzip => {
                let mut encoder = flate2::write::GzEncoder::new(
                    Vec::with_capacity(json.len() / 4),
                    flate2::Compression::fast(),
                );
                encoder.write_all(&json).expect("writing to memory");
                encoder.finish().expect("writing to memory")
            }
        }
    }
}

/// The attributes of a batch's message: table, wire version, change count, first and last
/// sequence numbers, body encoding.
pub fn attributes(batch: &EncodedBatch, compression: Compression) -> [(&'static str, String); 6] {
    [
        (attributes::TABLE, batch.source.to_string()),
        (attributes::VERSION, WIRE_VERSION.to_string()),
        (attributes::CHANGES, batch.changes.to_string()),
        (attributes::FIRST_SEQ, batch.first_seq.clone()),
        (attributes::LAST_SEQ, batch.last_seq.clone()),
        (attributes::ENCODING, compression.encoding().to_owned()),
    ]
}
