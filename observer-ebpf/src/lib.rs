//! Empty: the kernel programs are the `observer-probe` binary (built for `bpfel-unknown-none`).
#![no_std]
