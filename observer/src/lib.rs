//! observer: watches network traffic and reports which of the eight fallacies of distributed
//! computing is hurting you, as ECS-aligned NDJSON findings.
//!
//! The data flow: [`source`] (capture files) → [`decode`] (zero-copy frame decoding;
//! [`defrag`] reassembles IP fragments) → [`flow`] (bidirectional flow table with shared TCP
//! state) → [`analyze`] (one analyzer per fallacy) → [`finding`] (the typed wire model) →
//! [`sink`] (NDJSON). [`pipeline`] wires them.
//!
//! ```
//! use observer::{config::Config, pipeline::Pipeline, sink::MemorySink};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // A pcap: global header + a 54-byte Ethernet/IPv4/TCP SYN, sent again 1 s later.
//! let mut pcap = Vec::new();
//! pcap.extend_from_slice(&0xa1b2c3d4u32.to_le_bytes());
//! pcap.extend_from_slice(&2u16.to_le_bytes());
//! pcap.extend_from_slice(&4u16.to_le_bytes());
//! for w in [0u32, 0, 65535, 1] { pcap.extend_from_slice(&w.to_le_bytes()); }
//! let mut frame = Vec::new();
//! etherparse::PacketBuilder::ethernet2([1; 6], [2; 6])
//!     .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
//!     .tcp(40000, 80, 1, 65535)
//!     .syn()
//!     .write(&mut frame, &[])?;
//! for secs in [1_700_000_000u32, 1_700_000_001] {
//!     for w in [secs, 0, frame.len() as u32, frame.len() as u32] {
//!         pcap.extend_from_slice(&w.to_le_bytes());
//!     }
//!     pcap.extend_from_slice(&frame);
//! }
//! let path = std::env::temp_dir().join("observer-doc-example.pcap");
//! std::fs::write(&path, &pcap)?;
//!
//! let mut sink = MemorySink::default();
//! let mut pipeline = Pipeline::new(&Config::default(), &mut sink, &[path.clone()]);
//! pipeline.run_file(&path)?;
//! let summary = pipeline.finish()?;
//! assert_eq!(summary.packets.frames, 2);
//! // The start event, the unanswered-SYN finding, an inventory event and the summary.
//! assert_eq!(sink.events[0]["event"]["action"], "start");
//! assert_eq!(sink.events[1]["rule"]["name"], "tcp.handshake.unanswered");
//! assert_eq!(sink.events.last().unwrap()["event"]["action"], "summary");
//! # std::fs::remove_file(&path)?;
//! # Ok(()) }
//! ```

pub mod analyze;
pub mod app;
pub mod baseline;
pub mod community_id;
pub mod config;
pub mod decode;
pub mod defrag;
pub mod finding;
pub mod flow;
pub mod pipeline;
#[cfg(feature = "probe")]
pub mod probe;
pub mod proto;
pub mod report;
pub mod sink;
pub mod source;
pub mod time;
