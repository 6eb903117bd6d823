//! Findings the packets do not support, found by checking the corpus's findings against
//! tshark: each case built here, the expected values from the construction (every one failed
//! before its fix).

use observer::config::Config;
use observer_tests::tcp_flags::{ACK, FIN, SYN};
use observer_tests::{PcapBuilder, ScratchFile, run, stat, with_rule};
use serde_json::Value;

const C: &str = "10.0.0.1";
const S: &str = "10.0.0.2";

fn analyze(b: &PcapBuilder, name: &str) -> Vec<Value> {
    let f = ScratchFile::new(name, &b.finish());
    run(&[f.to_path_buf()], &Config::default()).0
}

/// One connection from client port `port` at `t0`: `method /orders` (with an authorization
/// header when `auth`), answered with `status`, then closed.
fn attempt(b: &mut PcapBuilder, t0: f64, port: u16, method: &str, auth: bool, status: u16) {
    let (c, s) = ((C, port), (S, 80));
    let req = format!(
        "{method} /orders HTTP/1.1\r\nHost: shop\r\n{}Content-Length: 2\r\n\r\n{{}}",
        if auth {
            "Authorization: NTLM TlRMTVNTUAADAAAA\r\n"
        } else {
            ""
        }
    );
    let resp = format!("HTTP/1.1 {status} X\r\nContent-Length: 0\r\n\r\n");
    let (q, r) = (req.len() as u32, resp.len() as u32);
    b.tcp(t0, c, s, 100, 0, SYN, &[])
        .tcp(t0 + 0.001, s, c, 500, 101, SYN | ACK, &[])
        .tcp(t0 + 0.002, c, s, 101, 501, ACK, req.as_bytes())
        .tcp(t0 + 0.003, s, c, 501, 101 + q, ACK, resp.as_bytes())
        .tcp(t0 + 0.004, c, s, 101 + q, 501 + r, FIN | ACK, &[])
        .tcp(t0 + 0.005, s, c, 501 + r, 102 + q, FIN | ACK, &[])
        .tcp(t0 + 0.006, c, s, 102 + q, 502 + r, ACK, &[]);
}

#[test]
fn a_request_sent_again_after_an_authentication_challenge_is_not_a_duplicate() {
    // A POST answered 401, then sent again with credentials and answered 200 (NTLM and
    // Negotiate always work so): the server acted on it once.
    let mut b = PcapBuilder::default();
    attempt(&mut b, 0.0, 45_000, "POST", false, 401);
    attempt(&mut b, 0.1, 45_001, "POST", true, 201);
    // Control: a POST answered 500, then sent again: the first may have been acted on.
    attempt(&mut b, 1.0, 45_002, "PATCH", false, 500);
    attempt(&mut b, 1.1, 45_003, "PATCH", false, 200);
    let ev = analyze(&b, "auth-challenge.pcap");
    let f = with_rule(&ev, "http.request.duplicate");
    assert_eq!(f.len(), 1, "{f:#?}");
    assert!(f[0]["message"].as_str().unwrap().starts_with("PATCH "));
    assert_eq!(stat(&ev, "http.resent_after_refusal"), 1);
    assert_eq!(stat(&ev, "http.duplicate_requests"), 1);
}
