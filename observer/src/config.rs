//! Configuration: built-in defaults, optionally overridden by a TOML file (`--config FILE`).
//! Unknown keys and bad values are errors that name the key and the line.
//!
//! ```toml
//! [flows]
//! max_flows = 1000000          # flows held at once; the least recently active is evicted beyond
//! max_memory_mb = 1024         # the flows' memory, with what analyzers keep by flow id (lowers max_flows to fit)
//! max_parse_buffers_mb = 256   # all flows' parsing buffers together (TLS handshakes, HTTP
//!                              # heads, pending requests); a flow growing past it is shed
//! tcp_idle_timeout_secs = 7200 # an open TCP connection silent this long is ended
//! udp_idle_timeout_secs = 900  # same for UDP and other protocols
//! closed_linger_secs = 120     # a closed TCP connection is kept this long for late segments
//!                               # (so is an attempt nothing answered, after its last SYN)
//!
//! [networks]
//! internal = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10",
//!             "127.0.0.0/8", "169.254.0.0/16", "::1/128", "fe80::/10", "fc00::/7"]
//!
//! [tcp_health]
//! report_after_idle_secs = 60  # a destination's failed attempts are reported once it has
//!                              # had none for this long (and at the end of the input)
//! sweep_destinations = 64      # a client failing against this many distinct destinations
//!                              # is one `tcp.sweep` finding (0: never; else 2 to 1000)
//! ```

use crate::flow::FlowConfig;
use crate::time::NANOS_PER_SEC;
use serde::Deserialize;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// A configuration problem, naming the file and, where known, the key and line.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read. (The OS error is in the message and not also given as
    /// the cause, which `{:#}` would print a second time.)
    #[error("config {path}: cannot read: {error}")]
    Io {
        /// Config path.
        path: PathBuf,
        /// OS error.
        error: std::io::Error,
    },
    /// TOML syntax error, unknown key or wrong type (the message names key, line and column).
    #[error("config {path}: {message}")]
    Parse {
        /// Config path.
        path: PathBuf,
        /// The parser's description.
        message: String,
    },
    /// A value of the right type that is out of range.
    #[error("config {path}: line {line}: `{key}` {problem}")]
    Invalid {
        /// Config path.
        path: PathBuf,
        /// Dotted key.
        key: String,
        /// 1-based line, 0 when not found.
        line: usize,
        /// What is wrong.
        problem: String,
    },
}

/// An IP network in CIDR notation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    /// Network address (host bits cleared).
    pub addr: IpAddr,
    /// Prefix length.
    pub prefix: u8,
}

impl Cidr {
    /// Whether `ip` is inside this network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for Cidr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = a
            .trim()
            .parse()
            .map_err(|_| format!("`{s}` is not an IP network (expected e.g. 10.0.0.0/8)"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("`{s}`: prefix length must be 0..={max}"))?,
            None => max,
        };
        let network = match addr {
            IpAddr::V4(a) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
                IpAddr::from((u32::from(a) & mask).to_be_bytes())
            }
            IpAddr::V6(a) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
                IpAddr::from((u128::from(a) & mask).to_be_bytes())
            }
        };
        // Host bits are a typo (a wrong prefix length or address), not a network to guess:
        // 10.0.16.0/12 taken as 10.0.0.0/12 would hold other networks too.
        if network != addr {
            return Err(format!(
                "`{s}` has host bits set: the network with that prefix is {network}/{prefix}; \
                 write the network address, or /{max} for one host"
            ));
        }
        Ok(Cidr { addr, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// `[flows]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FlowsSection {
    /// Flows held at once.
    pub max_flows: u64,
    /// Memory of the flows (the table, and what the analyzers keep by flow id), MiB.
    pub max_memory_mb: u64,
    /// Memory of every flow's parsing buffers together, MiB.
    pub max_parse_buffers_mb: u64,
    /// Idle timeout of open TCP connections, seconds.
    pub tcp_idle_timeout_secs: f64,
    /// Idle timeout of UDP and other flows, seconds.
    pub udp_idle_timeout_secs: f64,
    /// Linger of closed TCP connections, and of attempts nothing answered after their last
    /// SYN, seconds.
    pub closed_linger_secs: f64,
}

impl Default for FlowsSection {
    fn default() -> Self {
        let d = FlowConfig::default();
        FlowsSection {
            max_flows: d.max_flows as u64,
            max_memory_mb: (d.max_memory >> 20) as u64,
            max_parse_buffers_mb: 256,
            tcp_idle_timeout_secs: (d.tcp_idle / NANOS_PER_SEC) as f64,
            udp_idle_timeout_secs: (d.udp_idle / NANOS_PER_SEC) as f64,
            closed_linger_secs: (d.closed_linger / NANOS_PER_SEC) as f64,
        }
    }
}

/// `[networks]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NetworksSection {
    /// Networks considered internal (RFC 1918, RFC 6598, loopback, link-local, ULA by default).
    pub internal: Vec<Cidr>,
}

impl Default for NetworksSection {
    fn default() -> Self {
        let internal = [
            "10.0.0.0/8",
            "172.16.0.0/12",
            "192.168.0.0/16",
            "100.64.0.0/10",
            "127.0.0.0/8",
            "169.254.0.0/16",
            "::1/128",
            "fe80::/10",
            "fc00::/7",
        ]
        .iter()
        .map(|s| s.parse().expect("built-in network is valid"))
        .collect();
        NetworksSection { internal }
    }
}

impl NetworksSection {
    /// Whether `ip` is in one of the internal networks.
    pub fn is_internal(&self, ip: IpAddr) -> bool {
        self.internal.iter().any(|c| c.contains(ip))
    }
}

/// `[tcp_health]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TcpHealthSection {
    /// A destination's failures are reported after this many seconds without a new one.
    pub report_after_idle_secs: f64,
    /// A client whose attempts failed against this many distinct destinations (address and
    /// port) is reported as one sweep (0: never).
    pub sweep_destinations: usize,
}

impl Default for TcpHealthSection {
    fn default() -> Self {
        TcpHealthSection {
            report_after_idle_secs: 60.0,
            sweep_destinations: 64,
        }
    }
}

/// `[topology]`: vanished endpoints, ICMP unreachable, stale DNS caches (fallacy 5).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TopologySection {
    /// A vanished endpoint, ICMP or stale-cache group is reported after this many seconds
    /// without a new failure (and at the end of the input).
    pub report_after_idle_secs: f64,
    /// A connection counts as using an expired DNS answer only this long after the TTL ran out
    /// (resolvers round TTLs, clients and capture clocks differ slightly).
    pub dns_ttl_grace_secs: f64,
    /// An endpoint counts as vanished only after this many failed attempts (one lost SYN is
    /// loss, not a topology change).
    pub min_failed_attempts: u64,
    /// In long runs, endpoints, DNS answers and lookups unused this long are forgotten once
    /// their map is more than half full.
    pub forget_after_secs: f64,
}

impl Default for TopologySection {
    fn default() -> Self {
        TopologySection {
            report_after_idle_secs: 60.0,
            dns_ttl_grace_secs: 1.0,
            min_failed_attempts: 2,
            forget_after_secs: 3600.0,
        }
    }
}

/// One `[[zone]]` table: a network and the zone, region and provider it lives in.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZoneEntry {
    /// The network.
    pub cidr: Cidr,
    /// Availability zone name (e.g. `use1-az1`).
    pub zone: String,
    /// Region name (e.g. `us-east-1`).
    pub region: String,
    /// Cloud provider; zones of different providers talk over the internet.
    #[serde(default)]
    pub provider: Option<String>,
    /// Traffic between this zone and the internet goes through a NAT gateway.
    #[serde(default)]
    pub nat_gateway: bool,
}

/// One `[[owner]]` table: who administers a set of external networks or names.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OwnerEntry {
    /// The owner's name as reported (`Stripe`, `payments team's SaaS`).
    pub name: String,
    /// Networks the owner runs.
    #[serde(default)]
    pub cidrs: Vec<Cidr>,
    /// DNS suffixes the owner runs (`stripe.com` matches `api.stripe.com`).
    #[serde(default)]
    pub suffixes: Vec<String>,
}

/// `[dependencies]`: external dependencies (fallacy 6).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DependenciesSection {
    /// An owner's failures are reported after this many seconds without a new one.
    pub report_after_idle_secs: f64,
}

impl Default for DependenciesSection {
    fn default() -> Self {
        DependenciesSection {
            report_after_idle_secs: 60.0,
        }
    }
}

/// `[pricing]`: US dollars per GB (10^9 bytes); 2026 list prices of the big clouds by default.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PricingSection {
    /// Between zones of one region, charged on each side (out and in).
    pub cross_zone_usd_per_gb: f64,
    /// Between regions of one provider, charged to the sender.
    pub inter_region_usd_per_gb: f64,
    /// To the internet (or another provider), charged to the sender.
    pub internet_egress_usd_per_gb: f64,
    /// NAT gateway processing, both directions.
    pub nat_gateway_usd_per_gb: f64,
}

impl Default for PricingSection {
    fn default() -> Self {
        PricingSection {
            cross_zone_usd_per_gb: 0.01,
            inter_region_usd_per_gb: 0.02,
            internet_egress_usd_per_gb: 0.09,
            nat_gateway_usd_per_gb: 0.045,
        }
    }
}

/// `[cost]`: how transport cost is reported (fallacy 7).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CostSection {
    /// How many of the costliest host pairs are reported as `cost.top_talker`.
    pub top_talkers: usize,
    /// Projected monthly cost of a pair that makes its finding medium severity.
    pub medium_usd_per_month: f64,
    /// … and high severity.
    pub high_usd_per_month: f64,
}

impl Default for CostSection {
    fn default() -> Self {
        CostSection {
            top_talkers: 5,
            medium_usd_per_month: 100.0,
            high_usd_per_month: 1000.0,
        }
    }
}

/// `[reliability]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReliabilitySection {
    /// Retransmitted share of a direction's data segments that makes a finding (0.02 = 2 %).
    pub rate_threshold: f64,
    /// A direction needs at least this many data segments to be judged on its rate.
    pub min_segments: u64,
    /// … and at least this many retransmissions.
    pub min_retransmissions: u64,
    /// A retransmission stall (RTO-like silence) at least this long makes a finding.
    pub stall_threshold_secs: f64,
    /// A connection open this long is judged while still open: its stalls at each
    /// retransmission, its rate over each stretch of this length; until then, when it ends.
    pub report_open_after_secs: f64,
}

impl Default for ReliabilitySection {
    fn default() -> Self {
        ReliabilitySection {
            rate_threshold: 0.02,
            min_segments: 20,
            min_retransmissions: 3,
            stall_threshold_secs: 1.0,
            report_open_after_secs: 60.0,
        }
    }
}

/// `[retries]`: duplicate requests and request timeouts.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetriesSection {
    /// Identical HTTP requests from one client within this window form a duplicate group.
    pub duplicate_window_secs: f64,
    /// A DNS query without a response this long after its last transmission is unanswered.
    pub dns_timeout_secs: f64,
    /// Unanswered requests and queries are reported per server once it has been quiet this long.
    pub report_after_idle_secs: f64,
}

impl Default for RetriesSection {
    fn default() -> Self {
        RetriesSection {
            duplicate_window_secs: 30.0,
            dns_timeout_secs: 5.0,
            report_after_idle_secs: 60.0,
        }
    }
}

/// `[latency]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LatencySection {
    /// Histogram events are written every this many seconds of capture time.
    pub interval_secs: f64,
    /// Services (server address:port) with histograms at most; further ones are counted only.
    pub max_services: usize,
    /// Memory of all latency histograms together, MiB (see [`crate::analyze::latency`]).
    pub max_histograms_mb: u64,
    /// A budget is judged only with at least this many samples.
    pub min_samples: u64,
    /// p99 budgets in milliseconds per metric (`tcp.handshake`, `tcp.rtt`, `http.response`,
    /// `http.response.complete`, `dns.response`, `tls.handshake`).
    pub budgets_ms: std::collections::BTreeMap<String, f64>,
    /// Sequential same-shape requests that make an N+1 finding …
    pub chatty_threshold: u64,
    /// … within this many seconds.
    pub chatty_window_secs: f64,
}

/// Largest `[latency] chatty_threshold`: each client-service pair watched keeps this many
/// call start times.
pub const MAX_CHATTY_THRESHOLD: u64 = 1000;

/// Largest `[tcp_health] sweep_destinations`: each client with failures watched (up to
/// [`crate::analyze::tcp_health::MAX_SWEEP_CLIENTS`]) keeps this many destinations, searched
/// at each of its failures.
pub const MAX_SWEEP_DESTINATIONS: usize = 1000;

/// Names of the latency metrics that budgets may be set for.
pub const LATENCY_METRICS: [&str; 6] = [
    "tcp.handshake",
    "tcp.rtt",
    "http.response",
    "http.response.complete",
    "dns.response",
    "tls.handshake",
];

impl Default for LatencySection {
    fn default() -> Self {
        LatencySection {
            interval_secs: 60.0,
            max_services: 10_000,
            max_histograms_mb: 256,
            min_samples: 20,
            budgets_ms: [
                ("tcp.handshake", 200.0),
                ("http.response", 1000.0),
                ("http.response.complete", 5000.0),
                ("dns.response", 200.0),
                ("tls.handshake", 1000.0),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
            chatty_threshold: 20,
            chatty_window_secs: 10.0,
        }
    }
}

/// `[bandwidth]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BandwidthSection {
    /// Capacity of every capture link, Mbit/s, when known (0 = unknown: saturation is then
    /// inferred from queueing delay).
    pub capacity_mbps: f64,
    /// Capacity per capture interface index (pcapng interface number), Mbit/s.
    pub interface_capacity_mbps: std::collections::BTreeMap<String, f64>,
    /// Share of capacity above which a link direction counts as saturated.
    pub saturation_threshold: f64,
    /// A saturation episode must last at least this long to be reported.
    pub min_saturation_secs: f64,
    /// Flows moving at least this many bytes are reported as bulk transfers.
    pub bulk_threshold_bytes: u64,
}

impl Default for BandwidthSection {
    fn default() -> Self {
        BandwidthSection {
            capacity_mbps: 0.0,
            interface_capacity_mbps: Default::default(),
            saturation_threshold: 0.9,
            min_saturation_secs: 1.0,
            bulk_threshold_bytes: 10_000_000,
        }
    }
}

/// The whole configuration.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Flow table limits.
    pub flows: FlowsSection,
    /// Address classification.
    pub networks: NetworksSection,
    /// TCP connection health analyzer.
    pub tcp_health: TcpHealthSection,
    /// Reliability analyzer (fallacy 1).
    pub reliability: ReliabilitySection,
    /// Topology analyzer (fallacy 5).
    pub topology: TopologySection,
    /// Duplicate requests and timeouts (fallacy 1).
    pub retries: RetriesSection,
    /// Latency analyzer (fallacy 2).
    pub latency: LatencySection,
    /// Bandwidth analyzer (fallacy 3).
    pub bandwidth: BandwidthSection,
    /// Owner map (`[[owner]]` tables) for external dependencies (fallacy 6).
    #[serde(rename = "owner")]
    pub owners: Vec<OwnerEntry>,
    /// External dependencies.
    pub dependencies: DependenciesSection,
    /// Zone map (`[[zone]]` tables) for transport cost (fallacy 7).
    #[serde(rename = "zone")]
    pub zones: Vec<ZoneEntry>,
    /// Transport prices.
    pub pricing: PricingSection,
    /// Transport cost reporting.
    pub cost: CostSection,
    /// When grouped findings are reported.
    pub report: ReportSection,
}

/// `[report]`: when grouped findings are reported.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReportSection {
    /// A group of failures still growing (its key never quiet for `report_after_idle_secs`) is
    /// reported once first seen this long ago, and what follows starts a new group; 0: only
    /// once quiet, or at the end. Cleartext and version findings are not failures: reported
    /// once quiet only (but a connection with credentials in clear, open this long, joins its
    /// group then instead of when it ends). Unset: 60 s in a streaming run (`live`, `probe`),
    /// 0 in `analyze`, where one finding per group reads best.
    pub active_group_secs: Option<f64>,
}

impl ReportSection {
    /// The streaming runs' default for [`ReportSection::active_group_secs`].
    pub const STREAMING_ACTIVE_GROUP_SECS: f64 = 60.0;

    /// Sets the streaming runs' default unless the configuration set a value.
    pub fn streaming(&mut self) {
        self.active_group_secs
            .get_or_insert(Self::STREAMING_ACTIVE_GROUP_SECS);
    }

    /// [`ReportSection::active_group_secs`] in nanoseconds, `None` when off.
    pub fn active_group_max(&self) -> Option<crate::time::Nanos> {
        self.active_group_secs
            .filter(|&s| s > 0.0)
            .map(|s| (s * NANOS_PER_SEC as f64) as crate::time::Nanos)
    }
}

fn secs_to_nanos(s: f64) -> i64 {
    (s * NANOS_PER_SEC as f64) as i64
}

/// The problem with a positive duration of `v` seconds that is 0 in nanoseconds, the
/// resolution of every time the program keeps: it would silently be 0.
fn below_a_nanosecond(v: f64) -> String {
    format!("is {v:e} s, below 1 ns, the resolution of times (it would be 0): give at least 1e-9")
}

impl Config {
    /// Reads and validates a TOML configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let bytes = std::fs::read(path).map_err(|error| ConfigError::Io {
            path: path.to_path_buf(),
            error,
        })?;
        // TOML is UTF-8: a byte that is not (a Latin-1 comment) is named by its line, as every
        // other problem of the file is.
        let text = String::from_utf8(bytes).map_err(|e| {
            let at = e.utf8_error().valid_up_to();
            let bytes = e.as_bytes();
            let line = bytes[..at].iter().filter(|&&b| b == b'\n').count() + 1;
            ConfigError::Parse {
                path: path.to_path_buf(),
                message: format!(
                    "line {line}: not UTF-8 text (byte {at} is 0x{:02x}): save the file as UTF-8",
                    bytes[at]
                ),
            }
        })?;
        Self::parse(path, &text)
    }

    /// Parses and validates configuration text; `path` is only used in messages.
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let cfg: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string().trim_end().to_string(),
        })?;
        let invalid = |key: &str, problem: &str| ConfigError::Invalid {
            path: path.to_path_buf(),
            key: key.to_string(),
            line: line_of(text, key),
            problem: problem.to_string(),
        };
        if !(cfg.reliability.rate_threshold > 0.0 && cfg.reliability.rate_threshold <= 1.0) {
            return Err(invalid(
                "reliability.rate_threshold",
                "must be a fraction in (0, 1], e.g. 0.02 for 2 %",
            ));
        }
        for (metric, budget) in &cfg.latency.budgets_ms {
            if !LATENCY_METRICS.contains(&metric.as_str()) {
                return Err(invalid(
                    &format!("latency.budgets_ms.{metric}"),
                    &format!(
                        "is not a latency metric (one of {})",
                        LATENCY_METRICS.join(", ")
                    ),
                ));
            }
            if !(budget.is_finite() && *budget > 0.0) {
                return Err(invalid(
                    &format!("latency.budgets_ms.{metric}"),
                    "must be a positive number of milliseconds",
                ));
            }
        }
        if !(cfg.bandwidth.saturation_threshold > 0.0 && cfg.bandwidth.saturation_threshold <= 1.0)
        {
            return Err(invalid(
                "bandwidth.saturation_threshold",
                "must be a fraction in (0, 1], e.g. 0.9",
            ));
        }
        if !(cfg.bandwidth.capacity_mbps >= 0.0 && cfg.bandwidth.capacity_mbps.is_finite()) {
            return Err(invalid(
                "bandwidth.capacity_mbps",
                "must be a number of Mbit/s (0 = unknown)",
            ));
        }
        for (iface, mbps) in &cfg.bandwidth.interface_capacity_mbps {
            // The analyzer looks the index up written as a number (`1`): `01` or `+1` would
            // parse but never be found.
            let canonical = iface.parse::<u32>().is_ok_and(|n| n.to_string() == *iface);
            if !canonical {
                return Err(invalid(
                    &format!("bandwidth.interface_capacity_mbps.{iface}"),
                    "needs an interface index as key, written as a plain number (\"0\", \"1\", …)",
                ));
            }
            if !(*mbps > 0.0 && mbps.is_finite()) {
                return Err(invalid(
                    &format!("bandwidth.interface_capacity_mbps.{iface}"),
                    "must be a positive number of Mbit/s",
                ));
            }
        }
        for (key, v) in [
            (
                "pricing.cross_zone_usd_per_gb",
                cfg.pricing.cross_zone_usd_per_gb,
            ),
            (
                "pricing.inter_region_usd_per_gb",
                cfg.pricing.inter_region_usd_per_gb,
            ),
            (
                "pricing.internet_egress_usd_per_gb",
                cfg.pricing.internet_egress_usd_per_gb,
            ),
            (
                "pricing.nat_gateway_usd_per_gb",
                cfg.pricing.nat_gateway_usd_per_gb,
            ),
            ("cost.medium_usd_per_month", cfg.cost.medium_usd_per_month),
            ("cost.high_usd_per_month", cfg.cost.high_usd_per_month),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(invalid(key, "must be a number of US dollars, 0 or more"));
            }
        }
        if cfg.cost.medium_usd_per_month > cfg.cost.high_usd_per_month {
            // Named by whichever of the two the file sets (the other is the default).
            let key = if line_of(text, "cost.medium_usd_per_month") > 0 {
                "cost.medium_usd_per_month"
            } else {
                "cost.high_usd_per_month"
            };
            return Err(invalid(
                key,
                &format!(
                    "gives medium ({}) above high ({}) US dollars a month: no finding would be \
                     medium; medium_usd_per_month must be at most high_usd_per_month",
                    cfg.cost.medium_usd_per_month, cfg.cost.high_usd_per_month
                ),
            ));
        }
        for (i, z) in cfg.zones.iter().enumerate() {
            if z.zone.trim().is_empty() || z.region.trim().is_empty() {
                return Err(ConfigError::Invalid {
                    path: path.to_path_buf(),
                    key: format!("zone[{i}]"),
                    line: nth_line_of(text, "zone", i),
                    problem: "needs a non-empty `zone` and `region`".into(),
                });
            }
            let regions: Vec<&str> = cfg
                .zones
                .iter()
                .filter(|o| o.zone == z.zone)
                .map(|o| o.region.as_str())
                .collect();
            if regions.iter().any(|r| *r != z.region) {
                return Err(ConfigError::Invalid {
                    path: path.to_path_buf(),
                    key: format!("zone[{i}].region"),
                    line: nth_line_of(text, "zone", i),
                    problem: format!(
                        "zone `{}` is given two regions ({}): a zone lives in one region",
                        z.zone,
                        regions.join(", ")
                    ),
                });
            }
            // The zone's provider and NAT gateway are the zone's, whichever of its tables
            // says them: two tables that disagree would leave one silently unused.
            let same: Vec<&ZoneEntry> = cfg.zones.iter().filter(|o| o.zone == z.zone).collect();
            if same.iter().any(|o| o.provider != z.provider) {
                let providers: Vec<&str> = same
                    .iter()
                    .map(|o| o.provider.as_deref().unwrap_or("(none)"))
                    .collect();
                return Err(ConfigError::Invalid {
                    path: path.to_path_buf(),
                    key: format!("zone[{i}].provider"),
                    line: nth_line_of(text, "zone", i),
                    problem: format!(
                        "zone `{}` is given two providers ({}): give each of its tables the same",
                        z.zone,
                        providers.join(", ")
                    ),
                });
            }
            if same.iter().any(|o| o.nat_gateway != z.nat_gateway) {
                return Err(ConfigError::Invalid {
                    path: path.to_path_buf(),
                    key: format!("zone[{i}].nat_gateway"),
                    line: nth_line_of(text, "zone", i),
                    problem: format!(
                        "zone `{}` is given both `nat_gateway = true` and `false`: a zone reaches \
                         the internet one way (give each of its tables the same)",
                        z.zone
                    ),
                });
            }
            if let Some((j, o)) = cfg.zones[..i]
                .iter()
                .enumerate()
                .find(|(_, o)| o.cidr == z.cidr && o.zone != z.zone)
            {
                return Err(ConfigError::Invalid {
                    path: path.to_path_buf(),
                    key: format!("zone[{i}].cidr"),
                    line: nth_line_of(text, "zone", i),
                    problem: format!(
                        "`{}` is already zone `{}`'s (zone[{j}]): a network lives in one zone",
                        z.cidr, o.zone
                    ),
                });
            }
        }
        if !(cfg.topology.dns_ttl_grace_secs >= 0.0 && cfg.topology.dns_ttl_grace_secs.is_finite())
        {
            return Err(invalid(
                "topology.dns_ttl_grace_secs",
                "must be a number of seconds, 0 or more",
            ));
        }
        for (i, o) in cfg.owners.iter().enumerate() {
            if o.name.trim().is_empty() || (o.cidrs.is_empty() && o.suffixes.is_empty()) {
                return Err(ConfigError::Invalid {
                    path: path.to_path_buf(),
                    key: format!("owner[{i}]"),
                    line: nth_line_of(text, "owner", i),
                    problem: "needs a `name` and at least one of `cidrs` or `suffixes`".into(),
                });
            }
            if let Some(s) = o.suffixes.iter().find(|s| s.trim_matches('.').is_empty()) {
                return Err(ConfigError::Invalid {
                    path: path.to_path_buf(),
                    key: format!("owner[{i}].suffixes"),
                    line: nth_line_of(text, "owner", i),
                    problem: format!(
                        "holds `{s}`, which is no DNS name and would match nothing (write e.g. \"stripe.com\")"
                    ),
                });
            }
        }
        if !(2..=MAX_CHATTY_THRESHOLD).contains(&cfg.latency.chatty_threshold) {
            return Err(invalid(
                "latency.chatty_threshold",
                &format!("must be from 2 to {MAX_CHATTY_THRESHOLD}"),
            ));
        }
        let sweep = cfg.tcp_health.sweep_destinations;
        if sweep != 0 && !(2..=MAX_SWEEP_DESTINATIONS).contains(&sweep) {
            return Err(invalid(
                "tcp_health.sweep_destinations",
                &format!("must be 0 (never) or from 2 to {MAX_SWEEP_DESTINATIONS}"),
            ));
        }
        if cfg.latency.max_histograms_mb == 0 {
            return Err(invalid("latency.max_histograms_mb", "must be at least 1"));
        }
        if let Some(v) = cfg.report.active_group_secs {
            if !(0.0..1.0e9).contains(&v) {
                return Err(invalid(
                    "report.active_group_secs",
                    "must be a number of seconds, 0 or more",
                ));
            }
            if v > 0.0 && secs_to_nanos(v) < 1 {
                return Err(invalid("report.active_group_secs", &below_a_nanosecond(v)));
            }
        }
        if cfg.flows.max_flows == 0 {
            return Err(invalid("flows.max_flows", "must be at least 1"));
        }
        if cfg.flows.max_memory_mb == 0 {
            return Err(invalid("flows.max_memory_mb", "must be at least 1"));
        }
        if cfg.flows.max_parse_buffers_mb == 0 {
            return Err(invalid("flows.max_parse_buffers_mb", "must be at least 1"));
        }
        for (key, v) in [
            (
                "flows.tcp_idle_timeout_secs",
                cfg.flows.tcp_idle_timeout_secs,
            ),
            (
                "flows.udp_idle_timeout_secs",
                cfg.flows.udp_idle_timeout_secs,
            ),
            ("flows.closed_linger_secs", cfg.flows.closed_linger_secs),
            (
                "tcp_health.report_after_idle_secs",
                cfg.tcp_health.report_after_idle_secs,
            ),
            (
                "topology.report_after_idle_secs",
                cfg.topology.report_after_idle_secs,
            ),
            ("topology.forget_after_secs", cfg.topology.forget_after_secs),
            (
                "dependencies.report_after_idle_secs",
                cfg.dependencies.report_after_idle_secs,
            ),
            (
                "reliability.stall_threshold_secs",
                cfg.reliability.stall_threshold_secs,
            ),
            (
                "reliability.report_open_after_secs",
                cfg.reliability.report_open_after_secs,
            ),
            (
                "retries.duplicate_window_secs",
                cfg.retries.duplicate_window_secs,
            ),
            ("retries.dns_timeout_secs", cfg.retries.dns_timeout_secs),
            ("latency.interval_secs", cfg.latency.interval_secs),
            ("latency.chatty_window_secs", cfg.latency.chatty_window_secs),
            (
                "bandwidth.min_saturation_secs",
                cfg.bandwidth.min_saturation_secs,
            ),
            (
                "retries.report_after_idle_secs",
                cfg.retries.report_after_idle_secs,
            ),
        ] {
            if !(v.is_finite() && v > 0.0 && v < 1.0e9) {
                return Err(invalid(key, "must be a positive number of seconds"));
            }
            if secs_to_nanos(v) < 1 {
                return Err(invalid(key, &below_a_nanosecond(v)));
            }
        }
        if cfg.topology.min_failed_attempts == 0 {
            // An outage starts with a failure: 0 acted as 1 without a word.
            return Err(invalid(
                "topology.min_failed_attempts",
                "must be at least 1 (the failed attempts in a row that make an endpoint vanished)",
            ));
        }
        Ok(cfg)
    }

    /// The flow-table settings.
    pub fn flow_config(&self) -> FlowConfig {
        FlowConfig {
            max_flows: usize::try_from(self.flows.max_flows).unwrap_or(usize::MAX),
            max_memory: usize::try_from(self.flows.max_memory_mb.saturating_mul(1 << 20))
                .unwrap_or(usize::MAX),
            tcp_idle: secs_to_nanos(self.flows.tcp_idle_timeout_secs),
            udp_idle: secs_to_nanos(self.flows.udp_idle_timeout_secs),
            closed_linger: secs_to_nanos(self.flows.closed_linger_secs),
            extra_per_flow: crate::analyze::run_bytes_per_flow(),
        }
    }
}

/// The 1-based line where dotted `key` is assigned, 0 if not found: the line whose key, with
/// the `[table]` header above it, spells `key` (quotes and spaces around dots aside, comments
/// ignored), else the line assigning the nearest enclosing key (an inline table).
fn line_of(text: &str, key: &str) -> usize {
    let mut key = key;
    loop {
        let mut table = String::new();
        for (i, line) in text.lines().enumerate() {
            let line = without_comment(line).trim();
            if let Some((name, _)) = header(line) {
                table = name;
            } else if let Some((k, _)) = line.split_once('=') {
                let k = dotted(k);
                let full = if table.is_empty() {
                    k
                } else {
                    format!("{table}.{k}")
                };
                if full == key {
                    return i + 1;
                }
            }
        }
        match key.rsplit_once('.') {
            Some((outer, _)) => key = outer,
            None => return 0,
        }
    }
}

/// 1-based line of the `n`th (0-based) `[[name]]` header, 0 when absent.
fn nth_line_of(text: &str, name: &str, n: usize) -> usize {
    text.lines()
        .enumerate()
        .filter(|(_, l)| {
            header(without_comment(l).trim()).is_some_and(|(h, array)| array && h == name)
        })
        .nth(n)
        .map_or(0, |(i, _)| i + 1)
}

/// A line without its comment (a `#` outside quotes).
fn without_comment(line: &str) -> &str {
    let mut quote = None;
    for (i, c) in line.char_indices() {
        match (quote, c) {
            (None, '#') => return &line[..i],
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), _) if c == q => quote = None,
            _ => {}
        }
    }
    line
}

/// The dotted name of a `[table]` or `[[array]]` header line, and whether it is an array's.
fn header(line: &str) -> Option<(String, bool)> {
    if let Some(inner) = line.strip_prefix("[[").and_then(|l| l.strip_suffix("]]")) {
        return Some((dotted(inner), true));
    }
    let inner = line.strip_prefix('[')?.strip_suffix(']')?;
    // An array value continued on its own line (`["a", "b"]`) is no header.
    (!inner.contains(',')).then(|| (dotted(inner), false))
}

/// A TOML key as written (`a . "b"`) in its plain dotted form (`a.b`).
fn dotted(key: &str) -> String {
    key.split('.')
        .map(|p| p.trim().trim_matches(['"', '\'']))
        .collect::<Vec<_>>()
        .join(".")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(t: &str) -> Result<Config, ConfigError> {
        Config::parse(Path::new("test.toml"), t)
    }

    #[test]
    fn empty_file_gives_defaults() {
        let c = parse("").unwrap();
        assert_eq!(c.flows.max_flows, 1_000_000);
        assert!(c.networks.is_internal("10.1.2.3".parse().unwrap()));
        assert!(c.networks.is_internal("fd00::1".parse().unwrap()));
        assert!(!c.networks.is_internal("8.8.8.8".parse().unwrap()));
    }

    #[test]
    fn streaming_runs_report_lasting_groups_after_60_s_unless_configured() {
        let mut unset = parse("").unwrap().report;
        assert_eq!(unset.active_group_max(), None, "analyze: only once quiet");
        unset.streaming();
        assert_eq!(unset.active_group_max(), Some(60 * NANOS_PER_SEC));
        let mut off = parse("[report]\nactive_group_secs = 0\n").unwrap().report;
        off.streaming();
        assert_eq!(
            off.active_group_max(),
            None,
            "0 turns it off, streaming too"
        );
        let mut set = parse("[report]\nactive_group_secs = 5\n").unwrap().report;
        set.streaming();
        assert_eq!(set.active_group_max(), Some(5 * NANOS_PER_SEC));
    }

    #[test]
    fn unknown_key_names_key_and_line() {
        let e = parse("[flows]\nmax_flows = 10\nmax_flow = 3\n").unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("max_flow"), "{msg}");
        assert!(msg.contains("line 3"), "{msg}");
        assert!(msg.contains("test.toml"), "{msg}");
    }

    #[test]
    fn wrong_type_names_line() {
        let e = parse("[flows]\n\nmax_flows = \"many\"\n").unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("line 3"), "{msg}");
    }

    #[test]
    fn out_of_range_value_names_key_and_line() {
        let e = parse("[tcp_health]\n# comment\nreport_after_idle_secs = -1\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "config test.toml: line 3: `tcp_health.report_after_idle_secs` must be a positive number of seconds"
        );
    }

    #[test]
    fn memory_budgets_are_set_and_checked() {
        type Get = fn(&Config) -> u64;
        let budgets: [(&str, &str, Get); 2] = [
            ("flows", "max_parse_buffers_mb", |c| {
                c.flows.max_parse_buffers_mb
            }),
            ("latency", "max_histograms_mb", |c| {
                c.latency.max_histograms_mb
            }),
        ];
        for (section, key, get) in budgets {
            assert_eq!(get(&parse("").unwrap()), 256, "{key}");
            let c = parse(&format!("[{section}]\n{key} = 8\n")).unwrap();
            assert_eq!(get(&c), 8, "{key}");
            let e = parse(&format!("[{section}]\n{key} = 0\n")).unwrap_err();
            let msg = e.to_string();
            assert!(msg.contains(&format!("{section}.{key}")), "{msg}");
            assert!(msg.contains("line 2"), "{msg}");
        }
    }

    #[test]
    fn bad_cidr_is_rejected_with_its_text() {
        let e = parse("[networks]\ninternal = [\"10.0.0.0/33\"]\n").unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("10.0.0.0/33"), "{msg}");
        assert!(msg.contains("line 2"), "{msg}");
    }

    #[test]
    fn cidr_contains_and_rejects_host_bits() {
        let c: Cidr = "192.168.1.0/24".parse().unwrap();
        assert_eq!(c.to_string(), "192.168.1.0/24");
        assert!(c.contains("192.168.1.200".parse().unwrap()));
        assert!(!c.contains("192.168.2.1".parse().unwrap()));
        let e = "192.168.1.77/24".parse::<Cidr>().unwrap_err();
        assert!(
            e.contains("host bits") && e.contains("192.168.1.0/24"),
            "{e}"
        );
        let host: Cidr = "192.168.1.77".parse().unwrap();
        assert_eq!(host.to_string(), "192.168.1.77/32");
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("1.2.3.4".parse().unwrap()));
        assert!(!all.contains("::1".parse().unwrap()));
    }
}
