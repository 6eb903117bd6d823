//! Flow tracking: a bounded, bidirectional flow table keyed by 5-tuple, with shared TCP state.
//!
//! Time is the capture timestamp passed in; idle flows are evicted when capture time moves past
//! their timeout, and the least recently used flow is evicted when the table is full. Every
//! eviction is counted.

mod key;
mod seq;
mod table;
pub mod tcp;

pub(crate) use key::v4_endpoint;
pub use key::{Dir, FlowKey};
pub use seq::SeqNum;
pub use table::{EndReason, Flow, FlowConfig, FlowStats, FlowTable};
