#!/usr/bin/env bash
# Installs what the kernel probe's build needs (the `probe` feature, on by default) when it is
# missing: the pinned nightly toolchain with rust-src (its LLVM matches bpf-linker 0.10.4's) and
# bpf-linker 0.10.4 (about 6 minutes to compile the first time), and tcpdump/bpftool for the
# probe's tests. Nothing here is needed for offline analysis (`--no-default-features`).
set -euo pipefail
NIGHTLY=nightly-2026-05-19   # keep equal to NIGHTLY in observer/build.rs

if ! rustup run "$NIGHTLY" rustc -V >/dev/null 2>&1; then
  echo "installing the $NIGHTLY toolchain (eBPF side)" >&2
  rustup toolchain install "$NIGHTLY" --profile minimal --component rust-src
fi
if ! rustup component list --toolchain "$NIGHTLY" --installed 2>/dev/null | grep -q '^rust-src'; then
  rustup component add rust-src --toolchain "$NIGHTLY"
fi
if ! command -v bpf-linker >/dev/null 2>&1; then
  echo "installing bpf-linker 0.10.4 (takes about 6 minutes)" >&2
  cargo install bpf-linker --version 0.10.4 --locked
fi
need=()
command -v tcpdump >/dev/null 2>&1 || need+=(tcpdump)   # the probe tests capture the same traffic
command -v bpftool >/dev/null 2>&1 || need+=(bpftool)   # the probe tests check nothing stays attached
command -v nstat >/dev/null 2>&1 || need+=(iproute2)    # the kernel's own TCP counters
command -v nft >/dev/null 2>&1 || need+=(nftables)      # loss injection in the probe tests
command -v ethtool >/dev/null 2>&1 || need+=(ethtool)   # offloads off for the capture comparison
if [ ${#need[@]} -gt 0 ]; then
  echo "installing ${need[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq -o DPkg::Lock::Timeout=600 "${need[@]}" >/dev/null
fi
