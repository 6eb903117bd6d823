//! Protocol identification by content (`app::ident`) against tshark's dissectors, on the public
//! corpus (`../shared/corpus`, skipped when absent), and on requests built byte by byte from the
//! protocols' specifications.
//!
//! Oracle: the TCP streams in which tshark decodes a client request (a Kafka request header, an
//! MQTT CONNECT) sent by the side that sent the stream's first frame. observer takes the first
//! sender as the client when the capture misses the handshake, so streams that tshark sees
//! starting with the server's side are not expected (documented below where they occur).

use observer_tests::{analyze, corpus_dir, have};
use std::collections::{BTreeMap, BTreeSet};

fn protocols(path: &str) -> serde_json::Value {
    let ev = analyze(path);
    let s = ev.last().expect("summary");
    assert_eq!(s["event"]["action"], "summary");
    s["stats"]["protocols"].clone()
}

/// Streams where tshark decodes `filter` in a frame from the stream's first sender.
fn tshark_streams(path: &str, filter: &str) -> usize {
    let fields = |filter: &str| -> Vec<(u64, u64)> {
        observer_tests::tshark_fields(path, &["tcp.stream", "tcp.srcport"], filter)
            .lines()
            .filter_map(|l| {
                let mut it = l.split('\t').map(|x| x.parse::<u64>().ok());
                Some((it.next()??, it.next()??))
            })
            .collect()
    };
    let mut first = BTreeMap::new();
    for (stream, port) in fields("tcp") {
        first.entry(stream).or_insert(port);
    }
    fields(filter)
        .into_iter()
        .filter(|(stream, port)| first.get(stream) == Some(port))
        .map(|(stream, _)| stream)
        .collect::<BTreeSet<_>>()
        .len()
}

#[test]
fn kafka_mqtt_and_rtsp_match_tsharks_dissectors_on_the_corpus() {
    let Some(dir) = corpus_dir() else {
        eprintln!("skipped: no ../shared/corpus");
        return;
    };
    assert!(
        have("tshark"),
        "tshark is the oracle (scripts/test.sh installs it)"
    );
    let cases = [
        // 9 streams carry Kafka requests; in stream 1 the capture starts with the broker's
        // side (172.30.0.237:9092 first), so 8 are expected.
        ("ndpi__kafka.pcapng", "kafka.request_key", "kafka"),
        ("zeek__mqtt.pcap", "mqtt.msgtype == 1", "mqtt"),
        (
            "suricata-verify__mqtt31-pub-userpass__input.pcap",
            "mqtt.msgtype == 1",
            "mqtt",
        ),
        (
            "suricata-verify__mqtt5-pub-userpass__input.pcap",
            "mqtt.msgtype == 1",
            "mqtt",
        ),
        // RTSP shares HTTP's OPTIONS method: identified by its version, not taken for HTTP
        // (stream 0 starts mid-connection, with a GET_PARAMETER).
        ("ndpi__rtsp.pcap", "rtsp.request", "rtsp"),
    ];
    for (file, filter, name) in cases {
        let path = dir.join(file);
        let path = path.to_str().unwrap();
        let expected = tshark_streams(path, filter);
        assert!(expected > 0, "{file}: tshark decodes no {name}");
        let got = protocols(path)[name].as_u64().unwrap_or(0) as usize;
        assert_eq!(got, expected, "{file}: {name} connections");
    }
}
