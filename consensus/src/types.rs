//! Raft type configuration and the application data carried in the log.

use serde::{Deserialize, Serialize};
use std::sync::Arc;
use yilian_referral::{Command, DomainError, Outcome};

/// Raft node id. Ids are never reused after a node is removed.
pub type NodeId = u64;

/// How to reach a cluster member.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// UDP address of the node's QUIC endpoint (Raft and bulk transfer).
    pub raft_addr: String,
    /// TCP address of the node's HTTP API.
    pub api_addr: String,
}

/// A write to the replicated state, as proposed by the leader.
///
/// Commands are shared (`Arc`), not owned: openraft clones an entry each time it reads it back
/// (once per replication stream and once to apply it), and a shared command makes each of those
/// clones a reference count instead of a copy of every string in it. On the wire an `Arc<T>` is
/// `T` and a shared slice is a sequence, so the encoding is the one `Box<Command>` and
/// `Vec<StampedCommand>` had.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Request {
    /// A referral-domain command, stamped with the leader's clock.
    Referral {
        /// Milliseconds since the Unix epoch when the leader accepted the write.
        at_ms: u64,
        /// The command.
        command: Arc<Command>,
    },
    /// Several referral commands proposed as one entry (group commit), applied in order.
    Referrals(Arc<[StampedCommand]>),
    /// Retire a node id, so it can never be used again, and deny its certificates: at once if
    /// the node is outside the membership, otherwise as soon as a membership without it applies.
    RetireNode {
        /// The id being retired.
        node_id: NodeId,
        /// SHA-256 fingerprints of the certificates the node was seen with.
        certificates: Vec<String>,
    },
}

/// A referral-domain command stamped with the leader's clock, one of a [`Request::Referrals`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StampedCommand {
    /// Milliseconds since the Unix epoch when the leader accepted the write.
    pub at_ms: u64,
    /// The command (shared: see [`Request`]).
    pub command: Arc<Command>,
}

/// The state machine's answer to one log entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Response {
    /// Answer to a referral command.
    Referral(Result<Outcome, DomainError>),
    /// Answers to a [`Request::Referrals`], in the order of its commands.
    Referrals(Vec<Result<Outcome, DomainError>>),
    /// The node id is now retired.
    NodeRetired,
    /// Blank or membership entries carry no answer.
    Empty,
}

openraft::declare_raft_types!(
    /// Yilian's Raft types.
    pub TypeConfig:
        D = Request,
        R = Response,
        NodeId = NodeId,
        Node = NodeInfo,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = crate::store::SnapshotData,
);

/// The Raft handle for Yilian.
pub type YilianRaft = openraft::Raft<TypeConfig>;
/// Log id with Yilian's node id type.
pub type LogId = openraft::LogId<NodeId>;
/// Membership as stored in the log.
pub type StoredMembership = openraft::StoredMembership<NodeId, NodeInfo>;
/// Storage error with Yilian's node id type.
pub type StorageError = openraft::StorageError<NodeId>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec;
    use yilian_referral::{
        Actor, CaseAction, CaseId, CaseSubmission, Change, FacilityId, PatientKey, Priority, SpecialistId,
        TaskStatus, Vitals,
    };

    /// The log entry shapes of builds before commands were shared (`Box`, `Vec`, owned).
    #[derive(Serialize)]
    enum OwnedRequest {
        Referral { at_ms: u64, command: Box<Command> },
        Referrals(Vec<OwnedStamped>),
    }

    /// A stamped command of those builds.
    #[derive(Serialize)]
    struct OwnedStamped {
        at_ms: u64,
        command: Command,
    }

    /// Sharing the commands changed no byte on the wire or in the log: nodes of both builds
    /// replicate to each other and read each other's logs.
    #[test]
    fn shared_commands_encode_as_owned_ones_did() {
        let command = Command::new(
            Actor::ops("o"),
            Change::Case {
                case: CaseId("C1".into()),
                action: CaseAction::Report { text: "findings".into() },
                reason: Some("r".into()),
            },
        );
        let stamped = vec![
            OwnedStamped { at_ms: 6, command: command.clone() },
            OwnedStamped { at_ms: 7, command: Command::tick() },
        ];
        let pairs = [
            (
                codec::encode(&Request::Referral { at_ms: 5, command: Arc::new(command.clone()) }),
                codec::encode(&OwnedRequest::Referral { at_ms: 5, command: Box::new(command) }),
            ),
            (
                codec::encode(&Request::Referrals(
                    stamped
                        .iter()
                        .map(|s| StampedCommand { at_ms: s.at_ms, command: Arc::new(s.command.clone()) })
                        .collect::<Vec<_>>()
                        .into(),
                )),
                codec::encode(&OwnedRequest::Referrals(stamped)),
            ),
        ];
        for (shared, owned) in pairs {
            assert_eq!(shared.expect("encode shared"), owned.expect("encode owned"));
        }
    }

    /// Every request and response must survive the binary codec (bincode cannot decode
    /// self-describing serde layouts such as internally tagged enums).
    #[test]
    fn log_payloads_round_trip_through_codec() {
        let submission = CaseSubmission {
            patient: PatientKey("ab".repeat(32)),
            complaint: "c".into(),
            vitals: Vitals { heart_rate_bpm: Some(80), ..Vitals::default() },
            priority: Priority::Stat,
            green_channel: None,
            specialty: "cardiology".into(),
            modality: None,
            origin: FacilityId("TS".into()),
            target: None,
            draft: false,
        };
        let commands = vec![
            Command::new(Actor::staff("n1", "TS"), Change::SubmitCase(submission)),
            Command::new(
                Actor::specialist("D"),
                Change::Case {
                    case: CaseId("C1".into()),
                    action: CaseAction::Report { text: "f".into() },
                    reason: None,
                },
            ),
            Command::new(
                Actor::ops("o"),
                Change::Case {
                    case: CaseId("C1".into()),
                    action: CaseAction::Assign { to: SpecialistId("D".into()) },
                    reason: Some("r".into()),
                },
            ),
            Command::tick(),
        ];
        let batch = Request::Referrals(
            commands
                .iter()
                .map(|c| StampedCommand { at_ms: 6, command: Arc::new(c.clone()) })
                .collect::<Vec<_>>()
                .into(),
        );
        let single = commands.into_iter().map(|c| Request::Referral { at_ms: 5, command: Arc::new(c) });
        for request in single.chain([batch]) {
            let entry = openraft::Entry::<TypeConfig> {
                log_id: openraft::LogId::new(openraft::CommittedLeaderId::new(1, 1), 7),
                payload: openraft::EntryPayload::Normal(request),
            };
            let back: openraft::Entry<TypeConfig> =
                codec::decode(&codec::encode(&entry).expect("encode")).expect("decode");
            assert_eq!(format!("{back:?}"), format!("{entry:?}"));
        }
        let responses = vec![
            Response::Referral(Ok(Outcome::Case {
                case_id: CaseId("C1".into()),
                status: TaskStatus::Requested,
                owner: Some(SpecialistId("D".into())),
                unrouted: false,
            })),
            Response::Referral(Err(DomainError::invalid("x", "y"))),
            Response::NodeRetired,
            Response::Referrals(vec![
                Ok(Outcome::Tick { consequences: 2 }),
                Err(DomainError::invalid("x", "y")),
            ]),
        ];
        for r in responses {
            let back: Response = codec::decode(&codec::encode(&r).expect("encode")).expect("decode");
            assert_eq!(back, r);
        }
    }
}
