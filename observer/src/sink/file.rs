//! A file sink: appends NDJSON, rotates by size (`PATH` → `PATH.1` → … → `PATH.KEEP`),
//! `fsync`s on rotation and at the end, so a crash loses at most what the OS had not written.

use super::{Counters, Sink, SinkError};
use serde_json::Value;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// Appends events to a file, rotating it by size.
pub struct FileSink {
    path: PathBuf,
    out: BufWriter<File>,
    size: u64,
    rotate_bytes: u64,
    keep: u32,
    line: Vec<u8>,
    written: u64,
    rotations: u64,
}

fn open_append(path: &Path) -> Result<(File, u64), SinkError> {
    let f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|error| SinkError::Io {
            target: path.display().to_string(),
            error,
        })?;
    let size = f.metadata().map(|m| m.len()).unwrap_or(0);
    Ok((f, size))
}

impl FileSink {
    /// Opens (creates or appends to) `path`; `rotate_bytes` = 0 never rotates; `keep` old
    /// files are kept.
    pub fn open(path: &Path, rotate_bytes: u64, keep: u32) -> Result<Self, SinkError> {
        let (f, size) = open_append(path)?;
        Ok(FileSink {
            path: path.to_path_buf(),
            out: BufWriter::with_capacity(64 * 1024, f),
            size,
            rotate_bytes,
            keep: keep.max(1),
            line: Vec::with_capacity(1024),
            written: 0,
            rotations: 0,
        })
    }

    fn io(&self, error: std::io::Error) -> SinkError {
        SinkError::Io {
            target: self.path.display().to_string(),
            error,
        }
    }

    fn sync(&mut self) -> Result<(), SinkError> {
        self.out.flush().map_err(|e| self.io(e))?;
        self.out.get_ref().sync_all().map_err(|e| self.io(e))
    }

    fn rotated(&self, n: u32) -> PathBuf {
        let mut p = self.path.clone().into_os_string();
        p.push(format!(".{n}"));
        PathBuf::from(p)
    }

    fn rotate(&mut self) -> Result<(), SinkError> {
        self.sync()?;
        for n in (1..self.keep).rev() {
            let from = self.rotated(n);
            if from.exists() {
                std::fs::rename(&from, self.rotated(n + 1)).map_err(|e| self.io(e))?;
            }
        }
        std::fs::rename(&self.path, self.rotated(1)).map_err(|e| self.io(e))?;
        let (f, size) = open_append(&self.path)?;
        self.out = BufWriter::with_capacity(64 * 1024, f);
        self.size = size;
        self.rotations += 1;
        Ok(())
    }
}

impl Sink for FileSink {
    fn write(&mut self, event: &Value) -> Result<(), SinkError> {
        self.line.clear();
        serde_json::to_writer(&mut self.line, event).map_err(|e| self.io(e.into()))?;
        self.line.push(b'\n');
        if self.rotate_bytes > 0
            && self.size > 0
            && self.size + self.line.len() as u64 > self.rotate_bytes
        {
            self.rotate()?;
        }
        self.out.write_all(&self.line).map_err(|e| self.io(e))?;
        self.size += self.line.len() as u64;
        self.written += 1;
        Ok(())
    }

    fn finish(&mut self) -> Result<(), SinkError> {
        self.sync()
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        self.out.flush().map_err(|e| self.io(e))
    }

    fn counters(&self, prefix: &str, out: &mut Counters) {
        out.push((format!("{prefix}.written"), self.written));
        out.push((format!("{prefix}.rotations"), self.rotations));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rotates_by_size_and_keeps_every_line() {
        let dir = std::env::temp_dir().join(format!("observer-filesink-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("events.ndjson");
        let mut s = FileSink::open(&path, 200, 10).unwrap();
        for i in 0..20 {
            s.write(
                &json!({"n": i, "pad": "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}),
            )
            .unwrap();
        }
        s.finish().unwrap();
        let mut lines = Vec::new();
        for n in (1..=10).rev() {
            let p = dir.join(format!("events.ndjson.{n}"));
            if let Ok(t) = std::fs::read_to_string(&p) {
                assert!(t.len() <= 200, "{} is {} bytes", p.display(), t.len());
                lines.extend(t.lines().map(str::to_string));
            }
        }
        lines.extend(
            std::fs::read_to_string(&path)
                .unwrap()
                .lines()
                .map(str::to_string),
        );
        let ns: Vec<u64> = lines
            .iter()
            .map(|l| {
                serde_json::from_str::<Value>(l).unwrap()["n"]
                    .as_u64()
                    .unwrap()
            })
            .collect();
        assert_eq!(ns, (0..20).collect::<Vec<_>>(), "every line once, in order");
        assert!(s.rotations >= 5);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
