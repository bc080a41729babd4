//! Prometheus exposition of the region's [`Figures`], this node's Raft position and its image
//! transfers, for `GET /metrics`.
//!
//! Every metric is a gauge named `yilian_*`: the figures are recomputed from the replicated state
//! on each scrape; the `yilian_transfer_*` and `yilian_upload_*` values count since this node
//! process started (they go back to 0 when it restarts). Series are written in a
//! stable order (by facility, specialist, priority, status), and a family with no sample (e.g. a
//! rate whose denominator is 0) is left out. Labels carry only codes and the ids of facilities and
//! specialists, never a patient key or anybody's name.
//!
//! The output is the Prometheus text format 0.0.4 and at the same time valid OpenMetrics 1.0
//! text: with gauges only, the two differ by the closing `# EOF` line alone, which 0.0.4 reads as
//! a comment. Serve it with [`CONTENT_TYPE`].

use crate::imaging::prefetch::TransferSnapshot;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeGaugeValue, EncodeLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use yilian_referral::figures::{
    ClockCompliance, Durations, FacilityFigures, PriorityFigures, SpecialistFigures,
};
use yilian_referral::{
    Direction, FacilityId, FacilityLevel, Figures, Priority, SpecialistId, TaskStatus, TransferStatus,
};

/// Content type to serve [`render`]'s output with (Prometheus text format 0.0.4).
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// This node's own position in the Raft group, exposed next to the region's figures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NodeGauges {
    /// This node's Raft id.
    pub node_id: u64,
    /// Whether this node is the current leader.
    pub is_leader: bool,
    /// Current Raft term.
    pub term: u64,
    /// Index of the last log entry applied to the state machine.
    pub last_applied: u64,
    /// Index of the last entry in this node's log.
    pub last_log_index: u64,
}

/// Render `figures`, `node` and this node's image `transfers` as a Prometheus text exposition
/// (see the module docs for the format and [`CONTENT_TYPE`]).
pub fn render(figures: &Figures, node: &NodeGauges, transfers: &TransferSnapshot) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Snapshot {
        figures: figures.clone(),
        node: *node,
        transfers: *transfers,
    }));
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, &registry)
        .expect("encoding into a String cannot fail");
    out
}

/// What one scrape exposes.
#[derive(Debug)]
struct Snapshot {
    figures: Figures,
    node: NodeGauges,
    transfers: TransferSnapshot,
}

impl Collector for Snapshot {
    fn encode(&self, mut e: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        self.encode_node(&mut e)?;
        self.encode_transfers(&mut e)?;
        self.encode_totals(&mut e)?;
        self.encode_referrals(&mut e)?;
        self.encode_time_in_status(&mut e)?;
        self.encode_priorities(&mut e)?;
        self.encode_facilities(&mut e)?;
        self.encode_specialists(&mut e)
    }
}

/// What every encoding step returns.
type Encoded = Result<(), std::fmt::Error>;

/// Label set with static keys.
type Labels<'a, const N: usize> = [(&'static str, &'a str); N];

impl Snapshot {
    fn encode_node(&self, e: &mut DescriptorEncoder) -> Encoded {
        let n = &self.node;
        single(e, "yilian_raft_node_id", "This node's Raft id.", n.node_id)?;
        single(
            e,
            "yilian_raft_is_leader",
            "1 if this node is the Raft leader, else 0.",
            u64::from(n.is_leader),
        )?;
        single(e, "yilian_raft_term", "Current Raft term.", n.term)?;
        single(e, "yilian_raft_last_applied_index", "Index of the last log entry applied.", n.last_applied)?;
        single(
            e,
            "yilian_raft_last_log_index",
            "Index of the last entry in this node's log.",
            n.last_log_index,
        )?;
        let lag = n.last_log_index.saturating_sub(n.last_applied);
        single(e, "yilian_raft_apply_lag_entries", "Log entries not yet applied on this node.", lag)?;
        let clock = seconds(self.figures.region_clock_ms);
        single(
            e,
            "yilian_region_clock_timestamp_seconds",
            "Region clock: latest command time applied.",
            clock,
        )
    }

    /// Image movement counts since this node process started (they restart from 0 with it):
    /// node-to-node transfers, clinic uploads and ingest's manifest writes.
    fn encode_transfers(&self, e: &mut DescriptorEncoder) -> Encoded {
        let t = &self.transfers;
        let f = &t.fetch;
        let gauges: [(&str, &str, u64); 22] = [
            (
                "yilian_transfer_objects_fetched",
                "Objects fetched from other nodes and verified whole.",
                f.objects_stored,
            ),
            (
                "yilian_transfer_chunks_fetched",
                "Chunks fetched from other nodes and verified.",
                f.chunks_fetched,
            ),
            ("yilian_transfer_bytes_fetched", "Bytes of the chunks fetched.", f.bytes_fetched),
            (
                "yilian_transfer_chunks_resumed",
                "Verified chunks found in the persisted transfer state at start (not fetched again).",
                f.chunks_resumed,
            ),
            (
                "yilian_transfer_chunks_corrupt",
                "Chunks that failed their hash check and were fetched again.",
                f.chunks_corrupt,
            ),
            (
                "yilian_transfer_objects_restarted",
                "Objects fetched again because the whole did not match.",
                f.objects_restarted,
            ),
            ("yilian_transfer_connects", "Connections made to source nodes.", f.connects),
            (
                "yilian_transfer_connect_failures",
                "Failed connection attempts to source nodes.",
                f.connect_failures,
            ),
            (
                "yilian_transfer_request_failures",
                "Chunk requests that failed and were retried.",
                f.request_failures,
            ),
            (
                "yilian_transfer_throttled_bytes",
                "Bytes that went through the per-link bandwidth cap.",
                f.throttled_bytes,
            ),
            ("yilian_transfer_jobs_queued", "Prefetch jobs running or queued.", t.jobs_queued),
            ("yilian_transfer_jobs_completed", "Prefetch jobs completed.", t.jobs_completed),
            ("yilian_transfer_jobs_failed", "Prefetch jobs that failed (retried later).", t.jobs_failed),
            (
                "yilian_transfer_copies_recorded",
                "Instances recorded as held here after a verified prefetch.",
                t.copies_recorded,
            ),
            ("yilian_upload_files_announced", "Files announced by uploading clients.", t.uploads.begins),
            (
                "yilian_upload_chunks_accepted",
                "Upload chunks verified and written.",
                t.uploads.chunks_accepted,
            ),
            (
                "yilian_upload_chunks_refused",
                "Upload chunks refused (wrong length or hash).",
                t.uploads.chunks_refused,
            ),
            ("yilian_upload_files_accepted", "Uploaded files accepted.", t.uploads.files_accepted),
            ("yilian_upload_files_refused", "Uploaded files refused.", t.uploads.files_refused),
            (
                "yilian_ingest_manifest_writes",
                "Raft writes recording ingested instances (concurrent ones share a write).",
                t.manifests.writes,
            ),
            (
                "yilian_ingest_instances_recorded",
                "Ingested instances recorded in study manifests.",
                t.manifests.instances,
            ),
            (
                "yilian_ingest_instances_waiting",
                "Ingested instances waiting for their manifest write (in flight or queued).",
                t.manifests.waiting,
            ),
        ];
        for (name, help, value) in gauges {
            single(e, name, help, value)?;
        }
        Ok(())
    }

    fn encode_totals(&self, e: &mut DescriptorEncoder) -> Encoded {
        let t = &self.figures.totals;
        let mut by_status: Vec<(Labels<1>, u64)> =
            t.by_status.iter().map(|(s, n)| ([("status", s.code())], *n)).collect();
        by_status.insert(0, ([("status", TaskStatus::Draft.code())], t.drafts));
        by_status.push(([("status", TaskStatus::EnteredInError.code())], t.entered_in_error));
        family(
            e,
            "yilian_cases",
            "Cases by FHIR Task status, including drafts and entered-in-error (which no other figure counts).",
            by_status,
        )?;
        single(
            e,
            "yilian_cases_counted",
            "Cases counted in the figures: all but drafts and entered-in-error.",
            t.cases,
        )?;
        single(e, "yilian_cases_open", "Counted cases still open.", t.open)?;
        single(
            e,
            "yilian_cases_unrouted",
            "Open cases with no eligible reader, waiting for ops.",
            t.unrouted,
        )?;
        if let Some(age) = t.oldest_unrouted_age_ms {
            let help = "How long the longest-waiting unrouted case has waited.";
            single(e, "yilian_cases_unrouted_oldest_age_seconds", help, seconds(age))?;
        }
        single(
            e,
            "yilian_cases_rural",
            "Counted cases requested by township-level facilities.",
            t.rural_cases,
        )?;
        if let Some(share) = t.rural_share {
            single(e, "yilian_rural_share", "Share of counted cases from township-level facilities.", share)?;
        }
        Ok(())
    }

    fn encode_referrals(&self, e: &mut DescriptorEncoder) -> Encoded {
        let r = &self.figures.referrals;
        let counts = [
            ([("direction", "up")], r.cases_with_up),
            ([("direction", "down")], r.cases_with_down),
            ([("direction", "two_way")], r.cases_with_both),
        ];
        let help = "Counted cases with an up-, a down-, or both an up- and a down-transfer that was not \
                    cancelled or rejected.";
        family(e, "yilian_referral_cases", help, counts)?;
        let rates = [("up", r.up_referral_rate), ("down", r.down_referral_rate)]
            .into_iter()
            .filter_map(|(d, rate)| rate.map(|v| ([("direction", d)], v)));
        let help = "Share of counted cases referred up or down (transfers not cancelled or rejected).";
        family(e, "yilian_referral_rate", help, rates)?;
        if let Some(v) = r.two_way_rate {
            let help = "Of the cases referred up, the share also referred back down.";
            single(e, "yilian_two_way_referral_rate", help, v)?;
        }
        single(e, "yilian_cases_completed", "Counted cases completed.", r.completed)?;
        let help = "Completed cases with no transfer that was not cancelled or rejected.";
        single(e, "yilian_cases_completed_without_transfer", help, r.completed_without_transfer)?;
        if let Some(v) = r.resolved_without_transfer_share {
            let help = "Share of completed cases resolved without transferring the patient.";
            single(e, "yilian_resolved_without_transfer_share", help, v)?;
        }
        let transfers = self.figures.transfers.iter().flat_map(|(d, by_status)| {
            by_status
                .iter()
                .map(move |(s, n)| ([("direction", direction(*d)), ("status", transfer_status(*s))], *n))
        });
        family(e, "yilian_transfers", "Transfers of counted cases by direction and status.", transfers)
    }

    fn encode_time_in_status(&self, e: &mut DescriptorEncoder) -> Encoded {
        let t = &self.figures.time_in_status;
        let label = |s: &TaskStatus| [("status", s.code())];
        let help = "Total time counted cases spent in each status; open cases count up to now.";
        let total = t.iter().map(|(s, x)| (label(s), seconds(x.total_ms)));
        family(e, "yilian_time_in_status_cumulative_seconds", help, total)?;
        let help = "Mean time in each status per case that was in it.";
        let mean = t.iter().filter_map(|(s, x)| x.mean_ms.map(|m| (label(s), seconds(m))));
        family(e, "yilian_time_in_status_mean_seconds", help, mean)?;
        let help = "Counted cases that were in each status at some point.";
        family(e, "yilian_time_in_status_cases", help, t.iter().map(|(s, x)| (label(s), x.cases)))
    }

    fn encode_priorities(&self, e: &mut DescriptorEncoder) -> Encoded {
        let p = &self.figures.priorities;
        let label = |pr: &Priority| [("priority", pr.code())];
        family(
            e,
            "yilian_priority_cases",
            "Counted cases by priority.",
            p.iter().map(|(k, v)| (label(k), v.cases)),
        )?;
        let open = p.iter().map(|(k, v)| (label(k), v.open));
        family(e, "yilian_priority_open_cases", "Open cases by priority.", open)?;
        type Pick = fn(&PriorityFigures) -> &Durations;
        let times: [(&str, &str, Pick); 2] = [
            ("referral_to_accept", "request to acceptance", |x| &x.referral_to_accept),
            ("referral_to_report", "request to filed report", |x| &x.referral_to_report),
        ];
        for (name, what, pick) in times {
            let quantiles = p.iter().flat_map(|(k, v)| {
                let d = pick(v);
                [("0.5", d.p50_ms), ("0.9", d.p90_ms), ("1", d.max_ms)].into_iter().filter_map(
                    move |(q, ms)| ms.map(|ms| ([("priority", k.code()), ("quantile", q)], seconds(ms))),
                )
            });
            let help = format!("Time from {what} by priority: exact nearest-rank quantiles (1 = longest).");
            family(e, &format!("yilian_{name}_seconds"), &help, quantiles)?;
            let means = p.iter().filter_map(|(k, v)| pick(v).mean_ms.map(|m| (label(k), seconds(m))));
            let help = format!("Mean time from {what} by priority.");
            family(e, &format!("yilian_{name}_mean_seconds"), &help, means)?;
            let counts = p.iter().map(|(k, v)| (label(k), pick(v).count));
            let help = format!("Cases measured for the time from {what}, by priority.");
            family(e, &format!("yilian_{name}_cases"), &help, counts)?;
        }
        let verdicts = p.iter().flat_map(|(k, v)| {
            clocks(v).into_iter().flat_map(move |(clock, c)| {
                [("met", c.met), ("breached", c.breached), ("running", c.running)]
                    .map(|(verdict, n)| ([("priority", k.code()), ("clock", clock), ("verdict", verdict)], n))
            })
        });
        let help = "Counted cases by SLA clock verdict: met, breached (recorded breach or stopped late) or \
                    still running.";
        family(e, "yilian_sla_cases", help, verdicts)?;
        let compliance = p.iter().flat_map(|(k, v)| {
            clocks(v).into_iter().filter_map(move |(clock, c)| {
                c.compliance.map(|r| ([("priority", k.code()), ("clock", clock)], r))
            })
        });
        let help = "SLA compliance: met / (met + breached), by priority and clock (accept or report).";
        family(e, "yilian_sla_compliance", help, compliance)
    }

    fn encode_facilities(&self, e: &mut DescriptorEncoder) -> Encoded {
        let f = &self.figures.facilities;
        type Pick = fn(&FacilityFigures) -> u64;
        let volumes: [(&str, &str, Pick); 4] = [
            ("yilian_facility_cases_submitted", "Counted cases requested by each facility.", |x| x.submitted),
            (
                "yilian_facility_cases_received",
                "Counted cases accepted by readers working at each facility.",
                |x| x.received,
            ),
            (
                "yilian_facility_cases_reported",
                "Counted cases whose latest report was written at each facility.",
                |x| x.reported,
            ),
            ("yilian_facility_transfers_rejected", "Transfers each facility refused to receive.", |x| {
                x.rejected_in
            }),
        ];
        for (name, help, pick) in volumes {
            family(e, name, help, f.iter().map(|(id, x)| (facility_labels(id, x), pick(x))))?;
        }
        let transfers = f.iter().flat_map(|(id, x)| {
            [
                ("up", "in", x.up_in),
                ("up", "out", x.up_out),
                ("down", "in", x.down_in),
                ("down", "out", x.down_out),
            ]
            .map(|(d, way, n)| {
                let [fac, lvl] = facility_labels(id, x);
                ([fac, lvl, ("direction", d), ("way", way)], n)
            })
        });
        let help = "Transfers (not cancelled or rejected) arriving at (in) or leaving (out) each facility.";
        family(e, "yilian_facility_transfers", help, transfers)
    }

    fn encode_specialists(&self, e: &mut DescriptorEncoder) -> Encoded {
        let s = &self.figures.specialists;
        let open = s.iter().flat_map(|(id, x)| {
            [("offered", x.open_offered), ("owned", x.open_owned)].map(|(stage, n)| {
                let [sp, fac] = specialist_labels(id, x);
                ([sp, fac, ("stage", stage)], n)
            })
        });
        let help = "Open cases offered to (not yet accepted) or owned by each specialist.";
        family(e, "yilian_specialist_open_cases", help, open)?;
        type Pick = fn(&SpecialistFigures) -> u64;
        let gauges: [(&str, &str, Pick); 5] = [
            (
                "yilian_specialist_open_stat_cases",
                "Open STAT cases offered to or owned by each specialist.",
                |x| x.open_stat,
            ),
            (
                "yilian_specialist_shift_load_units",
                "Workload units each specialist accepted in the current or last shift.",
                |x| u64::from(x.shift_load),
            ),
            (
                "yilian_specialist_cap_cases",
                "Most open cases each specialist takes at once (STAT cases may exceed it).",
                |x| u64::from(x.cap),
            ),
            ("yilian_specialist_on_shift", "1 if the specialist is on shift, else 0.", |x| {
                u64::from(x.on_shift)
            }),
            (
                "yilian_specialist_completed_cases",
                "Counted cases completed with each specialist as owner.",
                |x| x.completed,
            ),
        ];
        for (name, help, pick) in gauges {
            family(e, name, help, s.iter().map(|(id, x)| (specialist_labels(id, x), pick(x))))?;
        }
        Ok(())
    }
}

/// The two SLA clocks of a priority, by label value.
fn clocks(p: &PriorityFigures) -> [(&'static str, &ClockCompliance); 2] {
    [("accept", &p.accept_sla), ("report", &p.report_sla)]
}

fn facility_labels<'a>(id: &'a FacilityId, x: &FacilityFigures) -> Labels<'a, 2> {
    [("facility", id.0.as_str()), ("level", level_code(x.level))]
}

fn specialist_labels<'a>(id: &'a SpecialistId, x: &'a SpecialistFigures) -> Labels<'a, 2> {
    [("specialist", id.0.as_str()), ("facility", x.facility.0.as_str())]
}

/// One unlabelled gauge.
fn single(e: &mut DescriptorEncoder, name: &str, help: &str, value: impl EncodeGaugeValue) -> Encoded {
    e.encode_descriptor(name, help, None, MetricType::Gauge)?.encode_gauge(&value)
}

/// A gauge family, one sample per label set, in the order given; nothing if there is no sample.
fn family<L: EncodeLabelSet, V: EncodeGaugeValue>(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    samples: impl IntoIterator<Item = (L, V)>,
) -> Encoded {
    let mut samples = samples.into_iter().peekable();
    if samples.peek().is_none() {
        return Ok(());
    }
    let mut metric = e.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, value) in samples {
        metric.encode_family(&labels)?.encode_gauge(&value)?;
    }
    Ok(())
}

fn seconds(ms: u64) -> f64 {
    ms as f64 / 1000.0
}

fn direction(d: Direction) -> &'static str {
    match d {
        Direction::Up => "up",
        Direction::Down => "down",
    }
}

fn transfer_status(s: TransferStatus) -> &'static str {
    use TransferStatus as T;
    match s {
        T::Requested => "requested",
        T::Accepted => "accepted",
        T::Rejected => "rejected",
        T::Cancelled => "cancelled",
        T::Completed => "completed",
    }
}

fn level_code(level: FacilityLevel) -> &'static str {
    match level {
        FacilityLevel::Township => "township",
        FacilityLevel::County => "county",
        FacilityLevel::Provincial => "provincial",
    }
}
