//! The role-checked transition table: which party may move a case from where to where.

use crate::specialist::SpecialistId;
use crate::status::TaskStatus;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Something a person does to a case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CaseAction {
    /// Send a draft (draft → requested, then routed).
    Submit,
    /// The offered reader acknowledges the offer (requested → received).
    Receive,
    /// The offered reader takes the case (requested/received → accepted).
    Accept,
    /// The offered reader passes; the case moves to the next reader or tier.
    Decline,
    /// The offered reader refuses the case as unsuitable (→ rejected, terminal).
    Reject,
    /// The owner starts reading (accepted → in-progress).
    Start,
    /// Pause (in-progress → on-hold).
    Hold,
    /// Continue (on-hold → in-progress).
    Resume,
    /// The owner files the report (stops the report clock).
    Report {
        /// Findings and recommendation.
        text: String,
    },
    /// Close a reported case (→ completed).
    Complete,
    /// The owner cannot finish (→ failed).
    Fail,
    /// Withdraw (→ cancelled).
    Cancel,
    /// Mark as created in error (→ entered-in-error).
    EnterInError,
    /// Reopen a closed case (terminal → requested, routed again). Always audited with a reason.
    Reopen,
    /// The owner passes the case to a named colleague, who must accept it.
    HandOff {
        /// The colleague.
        to: SpecialistId,
    },
    /// Ops route the case to a named reader (e.g. an unrouted case).
    Assign {
        /// The reader.
        to: SpecialistId,
    },
}

/// A party to a case, for the transition table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Party {
    /// The reader the case is offered to or owned by.
    Owner,
    /// Staff of the requesting facility.
    Requester,
    /// Region operations.
    Ops,
}

impl fmt::Display for Party {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Party::Owner => "the case owner",
            Party::Requester => "staff of the requesting facility",
            Party::Ops => "ops",
        })
    }
}

/// One row of the transition table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    /// Stable name, quoted in errors and audit events.
    pub name: &'static str,
    /// Statuses the action is allowed from.
    pub from: &'static [TaskStatus],
    /// Who may use it.
    pub by: &'static [Party],
    /// Whether a reason must be given.
    pub needs_reason: bool,
}

use Party::{Ops, Owner, Requester};
use TaskStatus as S;

const CLOSED: &[TaskStatus] = &[S::Completed, S::Cancelled, S::Failed, S::Rejected, S::EnteredInError];
const NOT_IN_ERROR: &[TaskStatus] = &[
    S::Draft,
    S::Requested,
    S::Received,
    S::Accepted,
    S::Rejected,
    S::Ready,
    S::InProgress,
    S::OnHold,
    S::Completed,
    S::Cancelled,
    S::Failed,
];

impl CaseAction {
    /// The action's name as the API spells it.
    pub fn name(&self) -> &'static str {
        match self {
            CaseAction::Submit => "submit",
            CaseAction::Receive => "receive",
            CaseAction::Accept => "accept",
            CaseAction::Decline => "decline",
            CaseAction::Reject => "reject",
            CaseAction::Start => "start",
            CaseAction::Hold => "hold",
            CaseAction::Resume => "resume",
            CaseAction::Report { .. } => "report",
            CaseAction::Complete => "complete",
            CaseAction::Fail => "fail",
            CaseAction::Cancel => "cancel",
            CaseAction::EnterInError => "enter-in-error",
            CaseAction::Reopen => "reopen",
            CaseAction::HandOff { .. } => "hand-off",
            CaseAction::Assign { .. } => "assign",
        }
    }

    /// The rule governing this action.
    pub fn rule(&self) -> Rule {
        let (name, from, by, needs_reason): (_, &'static [TaskStatus], &'static [Party], _) = match self {
            CaseAction::Submit => ("requester-submits-draft", &[S::Draft], &[Requester], false),
            CaseAction::Receive => ("owner-receives-offer", &[S::Requested], &[Owner], false),
            CaseAction::Accept => ("owner-accepts-offer", &[S::Requested, S::Received], &[Owner], false),
            CaseAction::Decline => ("owner-declines-offer", &[S::Requested, S::Received], &[Owner], false),
            CaseAction::Reject => ("owner-rejects-case", &[S::Requested, S::Received], &[Owner], true),
            CaseAction::Start => ("owner-starts", &[S::Accepted], &[Owner], false),
            CaseAction::Hold => ("owner-or-requester-holds", &[S::InProgress], &[Owner, Requester], true),
            CaseAction::Resume => ("owner-or-requester-resumes", &[S::OnHold], &[Owner, Requester], false),
            CaseAction::Report { .. } => ("owner-reports", &[S::InProgress, S::Ready], &[Owner], false),
            CaseAction::Complete => ("owner-completes-reported", &[S::InProgress, S::Ready], &[Owner], false),
            CaseAction::Fail => ("owner-fails", &[S::InProgress, S::Ready], &[Owner], true),
            CaseAction::Cancel => (
                "owner-or-requester-cancels",
                &[S::Draft, S::Requested, S::Received, S::Accepted],
                &[Owner, Requester],
                true,
            ),
            CaseAction::EnterInError => {
                ("requester-or-ops-enters-in-error", NOT_IN_ERROR, &[Requester, Ops], true)
            }
            CaseAction::Reopen => ("audited-reopen", CLOSED, &[Requester, Ops], true),
            CaseAction::HandOff { .. } => {
                ("owner-hands-off", &[S::Accepted, S::Ready, S::InProgress, S::OnHold], &[Owner], true)
            }
            CaseAction::Assign { .. } => ("ops-assigns", &[S::Requested, S::Received], &[Ops], false),
        };
        Rule { name, from, by, needs_reason }
    }

    /// The status the case moves to when this action is applied from `from`. Routing may then
    /// change it further (e.g. a STAT case offered by rule becomes `ready`).
    pub fn target(&self, from: TaskStatus) -> TaskStatus {
        match self {
            CaseAction::Submit | CaseAction::Decline | CaseAction::Reopen => S::Requested,
            CaseAction::HandOff { .. } | CaseAction::Assign { .. } => S::Requested,
            CaseAction::Receive => S::Received,
            CaseAction::Accept => S::Accepted,
            CaseAction::Reject => S::Rejected,
            CaseAction::Start | CaseAction::Resume => S::InProgress,
            CaseAction::Hold => S::OnHold,
            CaseAction::Report { .. } => from,
            CaseAction::Complete => S::Completed,
            CaseAction::Fail => S::Failed,
            CaseAction::Cancel => S::Cancelled,
            CaseAction::EnterInError => S::EnteredInError,
        }
    }
}
