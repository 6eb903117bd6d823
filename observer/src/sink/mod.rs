//! Sinks: where events go. Call protocol: [`Sink::write`] per event in order, then
//! [`Sink::finish`] once (flushes). A sink whose reader went away (broken pipe) reports
//! [`SinkError::Closed`], and the caller stops producing.

pub mod detached;
pub mod file;
pub mod socket;

use serde_json::Value;
use std::io::{self, Write};
use std::path::PathBuf;

/// Named counters a sink reports for the summary (`stats.outputs.*`).
pub type Counters = Vec<(String, u64)>;

/// Why an event could not be written.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The reader closed the stream (e.g. `observer … | head`).
    #[error("output closed by its reader")]
    Closed,
    /// Any other I/O failure.
    #[error("cannot write {target}: {error}")]
    Io {
        /// The sink's target.
        target: String,
        /// OS error, in the message (not also a `source()`: a chain printed whole, as
        /// `observer: error:` does, would give the OS's reason twice).
        error: io::Error,
    },
}

/// An event destination.
pub trait Sink {
    /// Writes one event.
    fn write(&mut self, event: &Value) -> Result<(), SinkError>;
    /// Flushes everything written.
    fn finish(&mut self) -> Result<(), SinkError>;
    /// Pushes what was written so far towards its reader (streaming); no durability promise.
    fn flush(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
    /// Adds this sink's counters under `prefix`.
    fn counters(&self, _prefix: &str, _out: &mut Counters) {}
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
                error: e,
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

    fn flush(&mut self) -> Result<(), SinkError> {
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

/// One `--output` target.
#[derive(Clone, Debug, PartialEq)]
pub enum OutputSpec {
    /// Standard output.
    Stdout,
    /// A file, rotated at `rotate_bytes` (0 = never), keeping `keep` old files.
    File {
        /// Path.
        path: PathBuf,
        /// Rotation size.
        rotate_bytes: u64,
        /// Old files kept.
        keep: u32,
    },
    /// A TCP or Unix socket (see [`socket`]).
    Socket {
        /// Where.
        endpoint: socket::Endpoint,
        /// Spool directory.
        spool: Option<PathBuf>,
        /// In-memory queue bound, lines.
        queue: usize,
    },
}

impl std::str::FromStr for OutputSpec {
    type Err = String;
    /// `stdout`, `file:PATH[,rotate=BYTES][,keep=N]`, `tcp:HOST:PORT[,spool=DIR][,queue=N]`,
    /// `unix:PATH[,spool=DIR][,queue=N]`. Sizes take k/M/G suffixes (powers of 1024).
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "stdout" || s == "-" {
            return Ok(OutputSpec::Stdout);
        }
        let (kind, rest) = s.split_once(':').ok_or_else(|| {
            format!("output `{s}`: expected stdout, file:PATH, tcp:HOST:PORT or unix:PATH")
        })?;
        let mut parts = rest.split(',');
        let target = parts.next().unwrap_or_default();
        if target.is_empty() {
            return Err(format!("output `{s}`: the {kind} target is empty"));
        }
        let mut opts: Vec<(&str, &str)> = Vec::new();
        for p in parts {
            let (k, v) = p
                .split_once('=')
                .ok_or_else(|| format!("output `{s}`: option `{p}` is not KEY=VALUE"))?;
            opts.push((k, v));
        }
        let size = |k: &str, v: &str| -> Result<u64, String> {
            let (num, mult) = match v.chars().last() {
                Some('k' | 'K') => (&v[..v.len() - 1], 1u64 << 10),
                Some('M') => (&v[..v.len() - 1], 1 << 20),
                Some('G') => (&v[..v.len() - 1], 1 << 30),
                _ => (v, 1),
            };
            num.parse::<u64>()
                .ok()
                .and_then(|n| n.checked_mul(mult))
                .ok_or(())
                .map_err(|_| format!("output `{s}`: `{k}={v}` is not a size (e.g. 100M)"))
        };
        let unknown = |k: &str, allowed: &str| {
            format!("output `{s}`: unknown option `{k}` (allowed: {allowed})")
        };
        match kind {
            "file" => {
                let (mut rotate_bytes, mut keep) = (0, 5);
                for (k, v) in opts {
                    match k {
                        "rotate" => rotate_bytes = size(k, v)?,
                        "keep" => {
                            keep = v.parse().map_err(|_| {
                                format!("output `{s}`: `keep={v}` is not a number of files")
                            })?
                        }
                        _ => return Err(unknown(k, "rotate, keep")),
                    }
                }
                Ok(OutputSpec::File {
                    path: PathBuf::from(target),
                    rotate_bytes,
                    keep,
                })
            }
            "tcp" | "unix" => {
                let endpoint = if kind == "tcp" {
                    let port = target
                        .rsplit_once(':')
                        .map(|(host, port)| (host, port.parse::<u16>()));
                    match port {
                        None => return Err(format!("output `{s}`: expected tcp:HOST:PORT")),
                        Some(("", _)) => return Err(format!("output `{s}`: the host is empty")),
                        Some((_, Ok(1..))) => {}
                        Some((_, _)) => {
                            return Err(format!(
                                "output `{s}`: the port is not a number from 1 to 65535"
                            ));
                        }
                    }
                    socket::Endpoint::Tcp(target.to_string())
                } else {
                    socket::Endpoint::Unix(PathBuf::from(target))
                };
                let (mut spool, mut queue) = (None, 100_000);
                for (k, v) in opts {
                    match k {
                        "spool" => spool = Some(PathBuf::from(v)),
                        "queue" => {
                            queue = v.parse().ok().filter(|q| *q > 0).ok_or_else(|| {
                                format!(
                                    "output `{s}`: `queue={v}` is not a positive number of events"
                                )
                            })?
                        }
                        _ => return Err(unknown(k, "spool, queue")),
                    }
                }
                Ok(OutputSpec::Socket {
                    endpoint,
                    spool,
                    queue,
                })
            }
            other => Err(format!(
                "output `{s}`: unknown kind `{other}` (stdout, file, tcp, unix)"
            )),
        }
    }
}

/// Several sinks fed the same events (`--output` given more than once). A sink whose reader
/// went away (`observer … -o stdout -o tcp:… | head`) or that failed (a full disk) is left out
/// from then on; the others carry on, so they still get every event and the summary. The
/// fan-out reports `Closed` only when every sink is closed; the first failure is reported by
/// every call once no sink is left, and by `finish` in any case.
pub struct FanOut {
    sinks: Vec<(String, Box<dyn Sink>, bool)>,
    failed: Option<SinkError>,
}

/// The same error again (an I/O error cannot be cloned: its kind and text are).
pub(crate) fn again(e: &SinkError) -> SinkError {
    match e {
        SinkError::Closed => SinkError::Closed,
        SinkError::Io { target, error } => SinkError::Io {
            target: target.clone(),
            error: io::Error::new(error.kind(), error.to_string()),
        },
    }
}

impl FanOut {
    /// Sinks with the names their counters are reported under.
    pub fn new(sinks: Vec<(String, Box<dyn Sink>)>) -> Self {
        FanOut {
            sinks: sinks.into_iter().map(|(n, s)| (n, s, true)).collect(),
            failed: None,
        }
    }

    fn each(
        &mut self,
        mut f: impl FnMut(&mut dyn Sink) -> Result<(), SinkError>,
    ) -> Result<(), SinkError> {
        let several = self.sinks.len() > 1;
        for (name, s, open) in &mut self.sinks {
            if !*open {
                continue;
            }
            match f(s.as_mut()) {
                Ok(()) => {}
                Err(SinkError::Closed) => *open = false,
                Err(e) => {
                    *open = false;
                    if several {
                        tracing::error!(output = %name, error = %e, "output failed; the other outputs carry on");
                    }
                    self.failed.get_or_insert(e);
                }
            }
        }
        if self.sinks.iter().any(|(_, _, open)| *open) {
            Ok(())
        } else {
            Err(self.failed.as_ref().map_or(SinkError::Closed, again))
        }
    }
}

impl Sink for FanOut {
    fn write(&mut self, event: &Value) -> Result<(), SinkError> {
        self.each(|s| s.write(event))
    }

    fn finish(&mut self) -> Result<(), SinkError> {
        // Every sink is finished (drained, synced) even if one fails.
        let mut first = Ok(());
        for (_, s, open) in &mut self.sinks {
            let r = s.finish();
            if *open && first.is_ok() {
                first = r;
            }
        }
        if let Some(e) = &self.failed {
            return Err(again(e));
        }
        match first {
            Err(SinkError::Closed) | Ok(()) => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        self.each(|s| s.flush())
    }

    fn counters(&self, prefix: &str, out: &mut Counters) {
        for (name, s, _) in &self.sinks {
            s.counters(&format!("{prefix}.{name}"), out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_specs() {
        assert_eq!("stdout".parse::<OutputSpec>(), Ok(OutputSpec::Stdout));
        assert_eq!(
            "file:/var/log/o.ndjson,rotate=100M,keep=3".parse::<OutputSpec>(),
            Ok(OutputSpec::File {
                path: "/var/log/o.ndjson".into(),
                rotate_bytes: 100 << 20,
                keep: 3
            })
        );
        assert_eq!(
            "tcp:127.0.0.1:5140,spool=/var/spool/o".parse::<OutputSpec>(),
            Ok(OutputSpec::Socket {
                endpoint: socket::Endpoint::Tcp("127.0.0.1:5140".into()),
                spool: Some("/var/spool/o".into()),
                queue: 100_000
            })
        );
        for bad in [
            "tcp:localhost",
            "file:",
            "udp:x:1",
            "file:x,rotate=big",
            "tcp:a:1,wat=1",
            "tcp:a:99999",
            "tcp:a:0",
            "tcp::1",
            "file:x,rotate=17179869184G",
            "nonsense",
        ] {
            let e = bad.parse::<OutputSpec>().unwrap_err();
            assert!(e.contains(bad), "{e}");
        }
    }
}
