//! With the `probe` feature, builds the kernel programs (`observer-ebpf`) for
//! `bpfel-unknown-none` with the pinned nightly and bpf-linker, and leaves the object in
//! `$OUT_DIR/observer-probe.o` for `include_bytes!`. Without the feature it does nothing, so
//! offline analysis builds on stable alone.
//!
//! The nested build uses its own target directory (`<target>/ebpf`) shared by every profile
//! and by clippy, so the eBPF crate is compiled once, and cargo's own freshness check makes
//! later runs a no-op.

use std::env;
use std::path::PathBuf;
use std::process::Command;

/// The nightly the kernel programs are built with: its LLVM must match bpf-linker 0.10.4's.
/// `scripts/setup-ebpf.sh` installs the same one.
const NIGHTLY: &str = "nightly-2026-05-19";

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=OBSERVER_EBPF_NIGHTLY");
    if env::var_os("CARGO_FEATURE_PROBE").is_none() {
        return;
    }
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let root = manifest.parent().expect("workspace root").to_path_buf();
    let ebpf = root.join("observer-ebpf");
    for p in ["src", "Cargo.toml", "wire/src", "wire/Cargo.toml"] {
        println!("cargo:rerun-if-changed={}", ebpf.join(p).display());
    }
    let target_dir = env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
        .join("ebpf");
    let nightly = env::var("OBSERVER_EBPF_NIGHTLY").unwrap_or_else(|_| NIGHTLY.to_string());
    let help = format!(
        "the `probe` feature builds observer's kernel programs and needs the {nightly} toolchain with rust-src and bpf-linker 0.10.4: run scripts/setup-ebpf.sh, or build without it (`--no-default-features --features live`, or `--no-default-features` for offline analysis only)"
    );
    match Command::new("bpf-linker").arg("--version").output() {
        Ok(o) if o.status.success() => {}
        _ => panic!("bpf-linker not found on PATH: {help}"),
    }
    let mut cmd = Command::new("rustup");
    cmd.current_dir(&root)
        .args([
            "run",
            &nightly,
            "cargo",
            "build",
            "--package",
            "observer-ebpf",
            "--bins",
        ])
        .args([
            "--release",
            "--target",
            "bpfel-unknown-none",
            "-Z",
            "build-std=core",
        ])
        .arg("--target-dir")
        .arg(&target_dir)
        .env(
            "CARGO_ENCODED_RUSTFLAGS",
            "-Cdebuginfo=2\x1f-Clink-arg=--btf",
        );
    // The outer build's toolchain, wrappers (clippy) and flags must not leak into the nested one.
    for k in [
        "RUSTC",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTUP_TOOLCHAIN",
        "RUSTFLAGS",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "CARGO_MAKEFLAGS",
        "MAKEFLAGS",
        "CARGO_ENCODED_RUSTDOCFLAGS",
    ] {
        cmd.env_remove(k);
    }
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run rustup ({e}): {help}"));
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        for line in stderr.lines() {
            println!("cargo:warning={line}");
        }
        panic!("building the kernel programs failed (above): {help}");
    }
    let obj = target_dir.join("bpfel-unknown-none/release/observer-probe");
    let dest = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR")).join("observer-probe.o");
    std::fs::copy(&obj, &dest)
        .unwrap_or_else(|e| panic!("copying {} to {}: {e}", obj.display(), dest.display()));
}
