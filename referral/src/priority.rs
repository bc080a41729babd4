//! Priorities, the green channel, and the SLA clocks a region sets for each priority.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// How fast the case must be seen, in FHIR order: `Routine < Urgent < Asap < Stat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    /// Routine referral.
    Routine,
    /// Urgent: seen within hours.
    Urgent,
    /// As soon as possible: emergency reads within the hour.
    Asap,
    /// STAT "green channel" (stroke, chest pain): seen within minutes.
    Stat,
}

impl Priority {
    /// Every priority, lowest first.
    pub const ALL: [Priority; 4] = [Priority::Routine, Priority::Urgent, Priority::Asap, Priority::Stat];

    /// The FHIR code.
    pub fn code(self) -> &'static str {
        match self {
            Priority::Routine => "routine",
            Priority::Urgent => "urgent",
            Priority::Asap => "asap",
            Priority::Stat => "stat",
        }
    }
}

impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// Green-channel pathways; a case on one is always STAT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GreenChannel {
    /// Suspected stroke (CT read well inside door-to-needle 60 min).
    Stroke,
    /// Chest pain (ECG to diagnosis under 10 min).
    ChestPain,
}

/// The clocks for one priority, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlaTargets {
    /// How long one offer stands before it moves to the next reader.
    pub offer_timeout_ms: u64,
    /// From request to acceptance by a reader; missing it escalates to the next tier.
    pub offer_to_accept_ms: u64,
    /// From acceptance to a filed report; missing it is a breach surfaced to ops.
    pub accept_to_report_ms: u64,
}

const MINUTE: u64 = 60_000;
const HOUR: u64 = 60 * MINUTE;

impl SlaTargets {
    /// Defaults drawn from published targets (see the referral lifecycle notes).
    pub fn default_for(priority: Priority) -> Self {
        match priority {
            // Stroke CT read target < 20 min; chest pain ECG diagnosis < 10 min after first look.
            Priority::Stat => Self {
                offer_timeout_ms: 2 * MINUTE,
                offer_to_accept_ms: 5 * MINUTE,
                accept_to_report_ms: 15 * MINUTE,
            },
            // Emergency CT/MR report within 1 h.
            Priority::Asap => Self {
                offer_timeout_ms: 10 * MINUTE,
                offer_to_accept_ms: 15 * MINUTE,
                accept_to_report_ms: 45 * MINUTE,
            },
            // Urgent: report within a few hours (4 working hours).
            Priority::Urgent => Self {
                offer_timeout_ms: 30 * MINUTE,
                offer_to_accept_ms: HOUR,
                accept_to_report_ms: 3 * HOUR,
            },
            // Routine: report within 24 h.
            Priority::Routine => Self {
                offer_timeout_ms: 2 * HOUR,
                offer_to_accept_ms: 4 * HOUR,
                accept_to_report_ms: 20 * HOUR,
            },
        }
    }
}

/// A region's routing and SLA policy.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegionPolicy {
    /// SLA clocks per priority; a priority left out uses the default.
    #[serde(default)]
    pub sla: BTreeMap<Priority, SlaTargets>,
    /// Whether a routed STAT case goes straight to `ready` (accepted by rule).
    #[serde(default)]
    pub stat_auto_ready: bool,
    /// How long after a case closes its last specialist may still read it (ms); default 72 h.
    #[serde(default)]
    pub specialist_grace_ms: Option<u64>,
}

impl RegionPolicy {
    /// The clocks for `priority` under this policy.
    pub fn targets(&self, priority: Priority) -> SlaTargets {
        self.sla.get(&priority).copied().unwrap_or_else(|| SlaTargets::default_for(priority))
    }

    /// The grace after close for a case's last specialist, in ms.
    pub fn specialist_grace_ms(&self) -> u64 {
        self.specialist_grace_ms.unwrap_or(crate::access::DEFAULT_SPECIALIST_GRACE_MS)
    }
}
