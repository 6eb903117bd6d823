#!/usr/bin/env bash
# The project's test command (the README's, and what CI runs): installs what the tests need on a
# fresh Debian machine, then checks formatting and lints and runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
dpkg -s libpcap-dev >/dev/null 2>&1 || need+=(libpcap-dev)   # the pcap crate (live capture, xtask's reader comparison)
command -v tshark >/dev/null 2>&1 || need+=(tshark)           # independent oracle in tests
command -v rsyslogd >/dev/null 2>&1 || need+=(rsyslog)        # a real collector for the socket output test
command -v python3 >/dev/null 2>&1 || need+=(python3)         # traffic generators in the live tests
command -v chromium >/dev/null 2>&1 || need+=(chromium)       # renders the HTML report (tests/tests/report.rs)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing ${need[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections 2>/dev/null || true
  apt-get update -qq
  apt-get install -y -qq -o DPkg::Lock::Timeout=600 "${need[@]}" >/dev/null
fi
rustup component add rustfmt clippy >/dev/null 2>&1 || true
# The kernel probe (default feature `probe`): pinned nightly + rust-src, bpf-linker, tcpdump, bpftool.
bash scripts/setup-ebpf.sh

cargo fmt --all -- --check
# observer-ebpf is built only for the BPF target, by observer's build script: never for the host.
cargo clippy --workspace --exclude observer-ebpf --all-targets --release -- -D warnings
# Offline analysis must build without libpcap and without the eBPF toolchain (no features).
cargo clippy -p observer --no-default-features --release -- -D warnings
cargo test --workspace --exclude observer-ebpf --release
