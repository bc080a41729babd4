//! Association negotiation: answer an A-ASSOCIATE-RQ with an A-ASSOCIATE-AC or -RJ.

use super::config::ScpConfig;
use crate::sop::{self, EXPLICIT_VR_LITTLE_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN};
use dicom_ul::pdu::{
    AssociationAC, AssociationRJ, AssociationRJResult, AssociationRJServiceProviderASCEReason,
    AssociationRJServiceProviderPresentationReason, AssociationRJServiceUserReason, AssociationRJSource,
    AssociationRQ, PresentationContextProposed, PresentationContextResult, PresentationContextResultReason,
    UserVariableItem, MAXIMUM_PDU_SIZE,
};

/// Verification SOP Class (C-ECHO).
pub(crate) const VERIFICATION: &str = "1.2.840.10008.1.1";
/// The DICOM application context.
const APPLICATION_CONTEXT: &str = "1.2.840.10008.3.1.1.1";
/// Yilian's implementation class UID (a UUID-derived UID under 2.25).
pub(crate) const IMPLEMENTATION_CLASS_UID: &str = "2.25.141022511932259724410068296861951719755";
/// Yilian's implementation version name (at most 16 characters).
pub(crate) const IMPLEMENTATION_VERSION_NAME: &str = concat!("YILIAN_", env!("CARGO_PKG_VERSION"));

/// A presentation context this SCP accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AcceptedContext {
    /// Its id (odd, 1..=255).
    pub id: u8,
    /// The abstract syntax (SOP class) UID, without padding.
    pub abstract_syntax: String,
    /// The transfer syntax chosen for it.
    pub transfer_syntax: &'static str,
}

/// An accepted association.
#[derive(Debug, Clone)]
pub(crate) struct Accepted {
    /// The answer to send.
    pub ac: AssociationAC,
    /// The contexts accepted.
    pub contexts: Vec<AcceptedContext>,
    /// Largest PDU the peer accepts (after its 6-byte header).
    pub peer_max_pdu: u32,
}

/// The answer to an A-ASSOCIATE-RQ.
#[derive(Debug, Clone)]
pub(crate) enum Answer {
    /// Accept, with these contexts.
    Accept(Accepted),
    /// Reject, for this reason (logged).
    Reject(AssociationRJ, &'static str),
}

/// Decide on an association request.
pub(crate) fn negotiate(rq: &AssociationRQ, cfg: &ScpConfig) -> Answer {
    if rq.protocol_version & 1 == 0 {
        return Answer::Reject(
            reject(
                AssociationRJResult::Permanent,
                AssociationRJSource::ServiceProviderASCE(
                    AssociationRJServiceProviderASCEReason::ProtocolVersionNotSupported,
                ),
            ),
            "protocol version 1 not offered",
        );
    }
    if trim_uid(&rq.application_context_name) != APPLICATION_CONTEXT {
        return Answer::Reject(
            reject(
                AssociationRJResult::Permanent,
                AssociationRJSource::ServiceUser(
                    AssociationRJServiceUserReason::ApplicationContextNameNotSupported,
                ),
            ),
            "not the DICOM application context",
        );
    }
    if rq.called_ae_title.trim() != cfg.ae_title.trim() {
        return Answer::Reject(
            reject(
                AssociationRJResult::Permanent,
                AssociationRJSource::ServiceUser(AssociationRJServiceUserReason::CalledAETitleNotRecognized),
            ),
            "called AE title is not this SCP's",
        );
    }
    let peer_max_pdu = rq
        .user_variables
        .iter()
        .find_map(|v| match v {
            UserVariableItem::MaxLength(0) => Some(MAXIMUM_PDU_SIZE),
            UserVariableItem::MaxLength(n) => Some(*n),
            _ => None,
        })
        .unwrap_or(dicom_ul::pdu::DEFAULT_MAX_PDU);

    let mut results = Vec::with_capacity(rq.presentation_contexts.len());
    let mut contexts = Vec::new();
    for pc in &rq.presentation_contexts {
        let (reason, ts) = match choose(pc) {
            Ok(ts) => {
                contexts.push(AcceptedContext {
                    id: pc.id,
                    abstract_syntax: trim_uid(&pc.abstract_syntax).to_owned(),
                    transfer_syntax: ts,
                });
                (PresentationContextResultReason::Acceptance, ts)
            }
            Err(reason) => (reason, IMPLICIT_VR_LITTLE_ENDIAN),
        };
        results.push(PresentationContextResult { id: pc.id, reason, transfer_syntax: ts.to_owned() });
    }
    let ac = AssociationAC {
        protocol_version: 1,
        calling_ae_title: rq.calling_ae_title.clone(),
        called_ae_title: rq.called_ae_title.clone(),
        application_context_name: APPLICATION_CONTEXT.to_owned(),
        presentation_contexts: results,
        user_variables: vec![
            UserVariableItem::MaxLength(cfg.max_pdu_length),
            UserVariableItem::ImplementationClassUID(IMPLEMENTATION_CLASS_UID.to_owned()),
            UserVariableItem::ImplementationVersionName(IMPLEMENTATION_VERSION_NAME.to_owned()),
        ],
    };
    Answer::Accept(Accepted { ac, contexts, peer_max_pdu })
}

/// The rejection sent when every association slot is busy.
pub(crate) fn busy() -> AssociationRJ {
    reject(
        AssociationRJResult::Transient,
        AssociationRJSource::ServiceProviderPresentation(
            AssociationRJServiceProviderPresentationReason::LocalLimitExceeded,
        ),
    )
}

fn reject(result: AssociationRJResult, source: AssociationRJSource) -> AssociationRJ {
    AssociationRJ { result, source }
}

/// The transfer syntax for a proposed context: Verification or an accepted storage SOP class,
/// with Explicit VR Little Endian if proposed, else Implicit VR Little Endian, else the first
/// proposed syntax ingest accepts.
fn choose(pc: &PresentationContextProposed) -> Result<&'static str, PresentationContextResultReason> {
    let abstract_syntax = trim_uid(&pc.abstract_syntax);
    if abstract_syntax != VERIFICATION && sop::sop_class(abstract_syntax).is_none() {
        return Err(PresentationContextResultReason::AbstractSyntaxNotSupported);
    }
    let proposed: Vec<&'static str> = pc
        .transfer_syntaxes
        .iter()
        .filter_map(|ts| sop::transfer_syntax(trim_uid(ts)).ok())
        .map(|ts| ts.uid)
        .collect();
    [EXPLICIT_VR_LITTLE_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN]
        .into_iter()
        .find(|preferred| proposed.contains(preferred))
        .or_else(|| proposed.first().copied())
        .ok_or(PresentationContextResultReason::TransferSyntaxesNotSupported)
}

/// A UID without the trailing NUL or space padding.
pub(crate) fn trim_uid(uid: &str) -> &str {
    uid.trim_end_matches(['\0', ' ']).trim_start()
}
