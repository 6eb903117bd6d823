//! tracefs: where it is, mounting it when it is not, and checking that the tracepoint fields
//! the kernel programs read (`observer_wire::tracepoints`) sit where this kernel puts them.
//! There is no CO-RE for the Rust kernel programs: a kernel whose records differ is refused
//! before anything is attached, naming every field that moved.

use observer_wire::tracepoints::{ALL, Tracepoint};
use std::path::{Path, PathBuf};

/// Where tracefs is mounted on current kernels.
pub const TRACEFS: &str = "/sys/kernel/tracing";

/// One `field:` line of a tracepoint `format` file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FormatField {
    /// Field name (array brackets removed).
    pub name: String,
    /// Byte offset.
    pub offset: usize,
    /// Size in bytes.
    pub size: usize,
}

/// Parses the `field:` lines of a tracepoint `format` file.
pub fn parse_format(text: &str) -> Vec<FormatField> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        let Some(rest) = line.strip_prefix("field:") else {
            continue;
        };
        let mut decl = None;
        let mut offset = None;
        let mut size = None;
        for part in rest.split(';') {
            let part = part.trim();
            if let Some(v) = part.strip_prefix("offset:") {
                offset = v.trim().parse().ok();
            } else if let Some(v) = part.strip_prefix("size:") {
                size = v.trim().parse().ok();
            } else if decl.is_none() && !part.is_empty() && !part.contains(':') {
                decl = Some(part);
            }
        }
        let (Some(decl), Some(offset), Some(size)) = (decl, offset, size) else {
            continue;
        };
        // "__u8 saddr[4]" -> "saddr"; "const void * skaddr" -> "skaddr".
        let last = decl.rsplit([' ', '*']).next().unwrap_or(decl);
        let name = last.split('[').next().unwrap_or(last).to_string();
        out.push(FormatField { name, offset, size });
    }
    out
}

/// Every difference between what `tp` expects and the parsed `format`.
pub fn mismatches(tp: &Tracepoint, format: &[FormatField]) -> Vec<String> {
    let mut out = Vec::new();
    for want in tp.fields {
        match format.iter().find(|f| f.name == want.name) {
            None => out.push(format!(
                "{}/{}: field `{}` is missing",
                tp.category, tp.name, want.name
            )),
            Some(f) if f.offset != want.offset || f.size != want.size => out.push(format!(
                "{}/{}: field `{}` is at offset {} size {}, the kernel programs read offset {} size {}",
                tp.category, tp.name, want.name, f.offset, f.size, want.offset, want.size
            )),
            Some(_) => {}
        }
    }
    out
}

/// Checks every tracepoint the probe attaches to against the `format` files under `root`
/// (a tracefs mount). The error lists every problem found.
pub fn verify(root: &Path) -> Result<(), String> {
    let mut problems = Vec::new();
    for tp in ALL {
        let path = root
            .join("events")
            .join(tp.category)
            .join(tp.name)
            .join("format");
        match std::fs::read_to_string(&path) {
            Ok(text) => problems.extend(mismatches(tp, &parse_format(&text))),
            Err(e) => problems.push(format!("{}: cannot read: {e}", path.display())),
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "this kernel's tracepoint records differ from what observer's kernel programs were built for, so nothing was attached:\n  {}",
            problems.join("\n  ")
        ))
    }
}

/// The tracefs mount, mounting it at [`TRACEFS`] when it is not mounted.
pub fn ensure_mounted() -> Result<PathBuf, String> {
    let root = PathBuf::from(TRACEFS);
    if root.join("events").is_dir() {
        return Ok(root);
    }
    let legacy = PathBuf::from("/sys/kernel/debug/tracing");
    if legacy.join("events").is_dir() {
        return Ok(legacy);
    }
    super::sys::mount_tracefs(TRACEFS).map_err(|e| {
        format!(
            "tracefs is not mounted at {TRACEFS} and mounting it failed ({e}); mount it with `sudo mount -t tracefs nodev {TRACEFS}`"
        )
    })?;
    if root.join("events").is_dir() {
        Ok(root)
    } else {
        Err(format!(
            "tracefs mounted at {TRACEFS} but has no events directory (tracepoints not enabled in this kernel?)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Copied from this machine's /sys/kernel/tracing/events/tcp/tcp_receive_reset/format
    // (kernel 6.18), the independent source of the offsets.
    const RECEIVE_RESET: &str = "name: tcp_receive_reset
ID: 2279
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;
\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

\tfield:const void * skaddr;\toffset:8;\tsize:8;\tsigned:0;
\tfield:__u16 sport;\toffset:16;\tsize:2;\tsigned:0;
\tfield:__u16 dport;\toffset:18;\tsize:2;\tsigned:0;
\tfield:__u16 family;\toffset:20;\tsize:2;\tsigned:0;
\tfield:__u8 saddr[4];\toffset:22;\tsize:4;\tsigned:0;
\tfield:__u8 daddr[4];\toffset:26;\tsize:4;\tsigned:0;
\tfield:__u8 saddr_v6[16];\toffset:30;\tsize:16;\tsigned:0;
\tfield:__u8 daddr_v6[16];\toffset:46;\tsize:16;\tsigned:0;
\tfield:__u64 sock_cookie;\toffset:64;\tsize:8;\tsigned:0;

print fmt: \"family=%s\"
";

    fn tp(name: &str) -> &'static Tracepoint {
        ALL.iter().find(|t| t.name == name).unwrap()
    }

    #[test]
    fn parses_names_offsets_and_sizes() {
        let f = parse_format(RECEIVE_RESET);
        assert_eq!(f.len(), 13);
        assert_eq!(
            f[4],
            FormatField {
                name: "skaddr".into(),
                offset: 8,
                size: 8
            }
        );
        assert_eq!(
            f[8],
            FormatField {
                name: "saddr".into(),
                offset: 22,
                size: 4
            }
        );
    }

    #[test]
    fn matching_format_passes_and_a_moved_field_is_named() {
        let t = tp("tcp_receive_reset");
        assert!(mismatches(t, &parse_format(RECEIVE_RESET)).is_empty());
        let moved = RECEIVE_RESET.replace("dport;\toffset:18", "dport;\toffset:20");
        let m = mismatches(t, &parse_format(&moved));
        assert_eq!(m.len(), 1, "{m:?}");
        assert!(m[0].contains("`dport` is at offset 20"), "{m:?}");
        let gone = RECEIVE_RESET.replace("family", "proto_family");
        let m = mismatches(t, &parse_format(&gone));
        assert!(m[0].contains("`family` is missing"), "{m:?}");
    }

    #[test]
    fn this_kernels_format_files_match_when_readable() {
        // On a machine with tracefs mounted and readable (root), the real files must match:
        // the same check `observer probe` runs before attaching.
        let root = Path::new(TRACEFS);
        if !root.join("events/tcp/tcp_probe/format").exists() {
            eprintln!("skipped: {TRACEFS} not mounted or not readable");
            return;
        }
        verify(root).unwrap();
    }
}
