//! What moves in a table's metadata when rows come in or go.

use serde_json::Value as Json;

/// The parts of a table's metadata that move when rows are appended or deleted: stored rows
/// and bytes, and what the streaming buffer holds. Equal marks at two moments mean no row came
/// in between, as far as the metadata tells (rows written by the Storage Write API show in the
/// streaming buffer first, then in the stored rows).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DataMarks {
    /// `numRows`.
    pub rows: Option<String>,
    /// `numBytes`.
    pub bytes: Option<String>,
    /// `streamingBuffer.estimatedRows`.
    pub buffered_rows: Option<String>,
    /// `streamingBuffer.oldestEntryTime`.
    pub buffer_oldest: Option<String>,
}

impl DataMarks {
    pub(super) fn of(resource: &Json) -> Self {
        let text = |pointer: &str| {
            resource.pointer(pointer).and_then(|v| match v {
                Json::String(s) => Some(s.clone()),
                Json::Number(n) => Some(n.to_string()),
                _ => None,
            })
        };
        DataMarks {
            rows: text("/numRows"),
            bytes: text("/numBytes"),
            buffered_rows: text("/streamingBuffer/estimatedRows"),
            buffer_oldest: text("/streamingBuffer/oldestEntryTime"),
        }
    }

    /// A short digest of the marks (16 hex digits), fit for a label value.
    pub fn digest(&self) -> String {
        // FNV-1a: stable across releases and platforms.
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for part in [
            &self.rows,
            &self.bytes,
            &self.buffered_rows,
            &self.buffer_oldest,
        ] {
            for byte in part.as_deref().unwrap_or("-").bytes().chain([0xff]) {
                hash ^= u64::from(byte);
                hash = hash.wrapping_mul(0x0100_0000_01b3);
            }
        }
        format!("{hash:016x}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn data_marks_change_with_rows_and_the_streaming_buffer() {
        let quiet = json!({"numRows": "10", "numBytes": "100"});
        let buffered = json!({"numRows": "10", "numBytes": "100",
            "streamingBuffer": {"estimatedRows": "3", "oldestEntryTime": "1796043814000"}});
        let a = DataMarks::of(&quiet);
        assert_eq!(a.digest(), DataMarks::of(&quiet).digest());
        assert_ne!(a.digest(), DataMarks::of(&buffered).digest());
        assert_ne!(
            a.digest(),
            DataMarks::of(&json!({"numRows": "11", "numBytes": "100"})).digest()
        );
        assert_eq!(a.digest().len(), 16);
    }
}
