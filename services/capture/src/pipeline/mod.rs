//! The pipeline between a [`crate::source::ChangeSource`] and a [`crate::sinks::BatchSink`].
//!
//! - [`capture_loop`]: the loop that reads events, batches changes, sends batches and confirms
//!   positions.
//! - [`batcher`]: per-table batches bounded by rows, bytes and age.
//! - [`acks`]: which position may be confirmed, given what was sent and acknowledged.

pub mod acks;
pub mod batcher;
pub mod capture_loop;

#[cfg(test)]
mod tests;
