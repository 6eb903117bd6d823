//! Sinks: where events go. Call protocol: [`Sink::write`] per event in order, then
//! [`Sink::finish`] once (flushes). A sink whose reader went away (broken pipe) reports
//! [`SinkError::Closed`], and the caller stops producing.

use serde_json::Value;
use std::io::{self, Write};

/// Why an event could not be written.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The reader closed the stream (e.g. `observer … | head`).
    #[error("output closed by its reader")]
    Closed,
    /// Any other I/O failure.
    #[error("cannot write {target}: {source}")]
    Io {
        /// The sink's target.
        target: String,
        /// OS error.
        #[source]
        source: io::Error,
    },
}

/// An event destination.
pub trait Sink {
    /// Writes one event.
    fn write(&mut self, event: &Value) -> Result<(), SinkError>;
    /// Flushes everything written.
    fn finish(&mut self) -> Result<(), SinkError>;
}

/// Newline-delimited JSON on any writer (stdout, a file).
pub struct NdjsonSink<W: Write> {
    out: io::BufWriter<W>,
    target: String,
}

impl<W: Write> NdjsonSink<W> {
    /// Wraps a writer; `target` names it in error messages.
    pub fn new(w: W, target: impl Into<String>) -> Self {
        NdjsonSink {
            out: io::BufWriter::with_capacity(64 * 1024, w),
            target: target.into(),
        }
    }

    fn map(&self, e: io::Error) -> SinkError {
        if e.kind() == io::ErrorKind::BrokenPipe {
            SinkError::Closed
        } else {
            SinkError::Io {
                target: self.target.clone(),
                source: e,
            }
        }
    }
}

impl<W: Write> Sink for NdjsonSink<W> {
    fn write(&mut self, event: &Value) -> Result<(), SinkError> {
        serde_json::to_writer(&mut self.out, event)
            .map_err(io::Error::from)
            .and_then(|()| self.out.write_all(b"\n"))
            .map_err(|e| self.map(e))
    }

    fn finish(&mut self) -> Result<(), SinkError> {
        self.out.flush().map_err(|e| self.map(e))
    }
}

/// Keeps events in memory (tests, embedding).
#[derive(Debug, Default)]
pub struct MemorySink {
    /// Everything written, in order.
    pub events: Vec<Value>,
}

impl Sink for MemorySink {
    fn write(&mut self, event: &Value) -> Result<(), SinkError> {
        self.events.push(event.clone());
        Ok(())
    }

    fn finish(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
}
