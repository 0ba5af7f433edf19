//! transbench's results: the versioned JSON schema (see `SCHEMA.md`),
//! histogram encoding and HdrHistogram's files, latency summaries and
//! atomic result files.
//! Nothing here touches a socket.

pub mod cell;
pub mod compare;
pub mod export;
pub mod fidelity;
pub mod hdrfiles;
pub mod hist;
pub mod schema;
pub mod stats;
pub mod store;
pub mod table;

pub use hist::{decode_hdr, encode_hdr, new_histogram, record, HistError, LatencySummary};
pub use schema::{
    BulkMetrics, ChurnExpectation, ChurnMetrics, ClockComparison, CounterDelta, Counters, DeliveredDirection,
    DeliveredImpairment, DeliveredLink, DeliveryMetrics, DirectionGoodput, ExpectedGoodput, ExpectedRecovery,
    Fanout, FlowMetrics, HeartbeatMetrics, HolExpectation, HolMetrics, HostInfo, Impairment, InterfaceInfo,
    Interleaved, LatencyKind, LinkEvents, LoadMetrics, LoadPhase, OntimeRatio, OutageFates, OutageMetrics,
    PortChoice, PortRange, PortRangeSource, QuicConnectionStats, QuicStatsSample, ReceiverFaultRecord,
    ReconnectRecord, RoundTripProbe, RunResults, ScenarioInfo, ScheduleChange, ScheduleRecord,
    ScheduleTimeline, Side, Sweep, SweepStep, TcpInfoSample, TimeWaitPoint, TimeWaitSeries, TimeWaitSide,
    TimelineBin, TrialParams, TrialResult, UdpMetrics, ZeroRtt, MAX_TIMELINE, SCHEMA,
};
pub use store::{parse_results, read_results, write_atomic, write_bytes_atomic, StoreError};
pub use table::{counted, human_ns, summary_table};
