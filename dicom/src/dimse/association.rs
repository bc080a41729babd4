//! One association: negotiation, then C-ECHO and C-STORE requests until release or abort.

use super::command::{
    self, Request, Response, C_CANCEL_RQ, C_ECHO_RQ, C_STORE_RQ, SUCCESS, UNRECOGNIZED_OPERATION,
};
use super::config::ScpConfig;
use super::error::AssociationError;
use super::negotiate::{self, AcceptedContext, Answer};
use super::part10::{AppendError, Header, PartialInstance};
use super::sink::{InstanceSink, ReceivedInstance, Refusal};
use super::wire::Wire;
use crate::sop;
use dicom_ul::pdu::{AbortRQServiceProviderReason, PDataValue, PDataValueType, Pdu, PDV_HEADER_SIZE};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tracing::{debug, error, info, warn, Span};
use yilian_referral::is_dicom_uid;

/// Largest A-ASSOCIATE-RQ read (many presentation contexts make it large).
const ASSOCIATE_RQ_LIMIT: u32 = 1 << 20;
/// Largest command set accepted (real ones are a few hundred bytes).
const COMMAND_LIMIT: usize = 64 << 10;

/// What every association of one server shares.
pub(crate) struct Shared<S> {
    /// The settings.
    pub cfg: ScpConfig,
    /// Where instances go.
    pub sink: Arc<S>,
    next_file: AtomicU64,
}

impl<S> Shared<S> {
    /// Shared state for a server with these settings and sink.
    pub(crate) fn new(cfg: ScpConfig, sink: Arc<S>) -> Self {
        Shared { cfg, sink, next_file: AtomicU64::new(0) }
    }

    /// A fresh temp file name in the temp directory.
    fn temp_path(&self) -> PathBuf {
        let n = self.next_file.fetch_add(1, Ordering::Relaxed);
        self.cfg.tmp_dir.join(format!("dimse-{}-{n}.dcm", std::process::id()))
    }
}

/// Serve one connection until the association ends. Runs inside the association's span, whose
/// `calling_ae` and `called_ae` fields it fills in.
pub(crate) async fn serve<S: InstanceSink>(
    stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared<S>>,
    mut stop: watch::Receiver<bool>,
) {
    let mut wire = Wire::new(stream, shared.cfg.idle_timeout);
    let rq = match read_or_stop(&mut wire, ASSOCIATE_RQ_LIMIT, &mut stop).await {
        Ok(Pdu::AssociationRQ(rq)) => rq,
        Ok(other) => {
            return end(
                wire,
                AssociationError::UnexpectedPdu(format!(
                    "{} before A-ASSOCIATE-RQ",
                    other.short_description()
                )),
            )
            .await
        }
        Err(e) => return end(wire, e).await,
    };
    let span = Span::current();
    span.record("calling_ae", rq.calling_ae_title.as_str());
    span.record("called_ae", rq.called_ae_title.as_str());
    let accepted = match negotiate::negotiate(&rq, &shared.cfg) {
        Answer::Reject(rj, reason) => {
            info!(reason, "association rejected");
            let _ = wire.send(&Pdu::AssociationRJ(rj)).await;
            return wire.close().await;
        }
        Answer::Accept(accepted) => accepted,
    };
    if let Err(e) = wire.send(&Pdu::AssociationAC(accepted.ac)).await {
        return end(wire, e).await;
    }
    info!(
        contexts = accepted.contexts.len(),
        proposed = rq.presentation_contexts.len(),
        "association accepted"
    );
    let mut association = Association {
        shared: &shared,
        peer,
        calling_ae: rq.calling_ae_title,
        called_ae: rq.called_ae_title,
        contexts: accepted.contexts,
        peer_max_pdu: accepted.peer_max_pdu,
        command: Vec::new(),
        command_context: None,
        pending: None,
        stored: 0,
    };
    let result = association.run(&mut wire, &mut stop).await;
    let stored = association.stored;
    drop(association);
    match result {
        Ok(()) => {
            info!(stored, "association released");
            wire.close().await;
        }
        Err(e) => {
            info!(stored, "association ended without release");
            end(wire, e).await;
        }
    }
}

/// Answer a connection made while every association slot is busy: read its A-ASSOCIATE-RQ and
/// reject it with "local limit exceeded".
pub(crate) async fn reject_busy(stream: TcpStream, cfg: &ScpConfig) {
    let mut wire = Wire::new(stream, cfg.idle_timeout);
    match wire.read(ASSOCIATE_RQ_LIMIT).await {
        Ok(Pdu::AssociationRQ(rq)) => {
            Span::current().record("calling_ae", rq.calling_ae_title.as_str());
            warn!(limit = cfg.max_associations, "association rejected: every association slot is busy");
            let _ = wire.send(&Pdu::AssociationRJ(negotiate::busy())).await;
            wire.close().await;
        }
        Ok(other) => {
            end(
                wire,
                AssociationError::UnexpectedPdu(format!(
                    "{} before A-ASSOCIATE-RQ",
                    other.short_description()
                )),
            )
            .await
        }
        Err(e) => end(wire, e).await,
    }
}

/// Log why an association ended and abort it where the protocol calls for it.
async fn end(wire: Wire, e: AssociationError) {
    use AbortRQServiceProviderReason as Reason;
    match &e {
        AssociationError::Closed | AssociationError::PeerAborted => {
            info!(reason = %e, "association ended");
            wire.close().await;
        }
        AssociationError::IdleTimeout(_) | AssociationError::Shutdown => {
            info!(reason = %e, "aborting association");
            wire.abort(Reason::ReasonNotSpecified).await;
        }
        AssociationError::MalformedPdu(_) => {
            warn!(reason = %e, "aborting association");
            wire.abort(Reason::InvalidPduParameter).await;
        }
        AssociationError::UnexpectedPdu(_) => {
            warn!(reason = %e, "aborting association");
            wire.abort(Reason::UnexpectedPdu).await;
        }
        AssociationError::Protocol(_) => {
            warn!(reason = %e, "aborting association");
            wire.abort(Reason::UnexpectedPduParameter).await;
        }
        AssociationError::Io(_) | AssociationError::WriteTimeout(_) => {
            warn!(reason = %e, "association lost");
            wire.close().await;
        }
    }
}

/// Read the next PDU, unless the server is stopping.
async fn read_or_stop(
    wire: &mut Wire,
    limit: u32,
    stop: &mut watch::Receiver<bool>,
) -> Result<Pdu, AssociationError> {
    tokio::select! {
        pdu = wire.read(limit) => pdu,
        () = stopped(stop) => Err(AssociationError::Shutdown),
    }
}

async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopping| *stopping).await;
}

/// A request whose data set is still arriving.
struct Pending {
    context_id: u8,
    /// When the command arrived, for the timing log.
    since: std::time::Instant,
    request: Request,
    target: Target,
}

impl Pending {
    /// A request whose data set starts arriving now.
    fn new(context_id: u8, request: Request, target: Target) -> Self {
        Pending { context_id, since: std::time::Instant::now(), request, target }
    }
}

/// Where the data set of a pending request goes.
enum Target {
    /// Into a Part-10 temp file.
    Store(PartialInstance),
    /// Nowhere: the request is answered with this refusal once the data set is complete.
    Refuse(Refusal),
}

/// An established association.
struct Association<'a, S> {
    shared: &'a Shared<S>,
    peer: SocketAddr,
    calling_ae: String,
    called_ae: String,
    contexts: Vec<AcceptedContext>,
    peer_max_pdu: u32,
    command: Vec<u8>,
    command_context: Option<u8>,
    pending: Option<Pending>,
    stored: u64,
}

impl<S: InstanceSink> Association<'_, S> {
    /// Serve requests until the peer releases (Ok) or the association fails.
    async fn run(
        &mut self,
        wire: &mut Wire,
        stop: &mut watch::Receiver<bool>,
    ) -> Result<(), AssociationError> {
        loop {
            match read_or_stop(wire, self.shared.cfg.max_pdu_length, stop).await? {
                Pdu::PData { data } => {
                    for pdv in data {
                        self.on_pdv(wire, pdv).await?;
                    }
                }
                Pdu::ReleaseRQ => {
                    if self.pending.take().is_some() {
                        warn!("association released in the middle of a data set; the partial instance is dropped");
                    }
                    wire.send(&Pdu::ReleaseRP).await?;
                    return Ok(());
                }
                Pdu::AbortRQ { .. } => return Err(AssociationError::PeerAborted),
                Pdu::Unknown { pdu_type, .. } => {
                    return Err(AssociationError::MalformedPdu(format!("unknown PDU type {pdu_type:#04x}")))
                }
                other => return Err(AssociationError::UnexpectedPdu(other.short_description().to_string())),
            }
        }
    }

    async fn on_pdv(&mut self, wire: &mut Wire, pdv: PDataValue) -> Result<(), AssociationError> {
        let id = pdv.presentation_context_id;
        let Some(context) = self.contexts.iter().find(|c| c.id == id).cloned() else {
            return Err(AssociationError::Protocol(format!(
                "P-DATA on presentation context {id}, which was not accepted"
            )));
        };
        match pdv.value_type {
            PDataValueType::Command => {
                if self.pending.is_some() {
                    return Err(AssociationError::Protocol(
                        "a command arrived before the previous data set was complete".to_owned(),
                    ));
                }
                if self.command_context.is_some_and(|c| c != id) {
                    return Err(AssociationError::Protocol(
                        "command fragments arrived on two presentation contexts".to_owned(),
                    ));
                }
                if self.command.len() + pdv.data.len() > COMMAND_LIMIT {
                    return Err(AssociationError::Protocol(format!(
                        "command set over {COMMAND_LIMIT} bytes"
                    )));
                }
                self.command.extend_from_slice(&pdv.data);
                self.command_context = Some(id);
                if pdv.is_last {
                    let bytes = std::mem::take(&mut self.command);
                    self.command_context = None;
                    let request = command::parse(&bytes).map_err(AssociationError::Protocol)?;
                    self.on_command(wire, &context, request).await?;
                }
                Ok(())
            }
            PDataValueType::Data => {
                let limit = self.shared.cfg.max_instance_bytes;
                let Some(pending) = self.pending.as_mut() else {
                    return Err(AssociationError::Protocol(
                        "a data set fragment arrived without a command".to_owned(),
                    ));
                };
                if pending.context_id != id {
                    return Err(AssociationError::Protocol(format!(
                        "data set fragment on presentation context {id}, its command came on {}",
                        pending.context_id
                    )));
                }
                if let Target::Store(instance) = &mut pending.target {
                    if let Err(e) = instance.append(&pdv.data).await {
                        pending.target = Target::Refuse(append_refusal(e, limit));
                    }
                }
                if pdv.is_last {
                    if let Some(pending) = self.pending.take() {
                        self.complete(wire, &context, pending).await?;
                    }
                }
                Ok(())
            }
        }
    }

    async fn on_command(
        &mut self,
        wire: &mut Wire,
        context: &AcceptedContext,
        request: Request,
    ) -> Result<(), AssociationError> {
        let refusal = match (request.field, request.has_data_set) {
            (C_CANCEL_RQ, _) => {
                debug!("C-CANCEL-RQ ignored: nothing to cancel");
                return Ok(());
            }
            (C_ECHO_RQ, false) => {
                debug!("C-ECHO");
                return self.respond(wire, context.id, &request, SUCCESS, None).await;
            }
            (C_STORE_RQ, true) => {
                let target = self.start_store(context, &request).await;
                self.pending = Some(Pending::new(context.id, request, target));
                return Ok(());
            }
            (C_STORE_RQ, false) => Refusal::cannot_understand("C-STORE-RQ without a data set"),
            (C_ECHO_RQ, true) => Refusal::cannot_understand("C-ECHO-RQ with a data set"),
            (field, _) => Refusal::new(
                UNRECOGNIZED_OPERATION,
                format!("operation {field:#06X} is not supported here; use C-STORE or C-ECHO"),
            ),
        };
        info!(command = request.field, status = refusal.status, comment = %refusal.comment, "request refused");
        if request.has_data_set {
            self.pending = Some(Pending::new(context.id, request, Target::Refuse(refusal)));
            Ok(())
        } else {
            self.respond(wire, context.id, &request, refusal.status, Some(&refusal.comment)).await
        }
    }

    /// Check a C-STORE-RQ and open its temp file, or decide to refuse it.
    async fn start_store(&self, context: &AcceptedContext, request: &Request) -> Target {
        if request.sop_class_uid != context.abstract_syntax {
            return Target::Refuse(Refusal::sop_class_not_supported(format!(
                "SOP class {} sent on a {} context",
                request.sop_class_uid,
                sop::sop_class(&context.abstract_syntax).map_or("verification", |c| c.name)
            )));
        }
        if !is_dicom_uid(&request.sop_instance_uid) {
            return Target::Refuse(Refusal::cannot_understand(
                "Affected SOP Instance UID is missing or malformed",
            ));
        }
        let header = Header {
            sop_class_uid: &request.sop_class_uid,
            sop_instance_uid: &request.sop_instance_uid,
            transfer_syntax: context.transfer_syntax,
            source_ae: &self.calling_ae,
        };
        let limit = self.shared.cfg.max_instance_bytes;
        match PartialInstance::create(self.shared.temp_path(), header, limit).await {
            Ok(instance) => Target::Store(instance),
            Err(e) => Target::Refuse(append_refusal(e, limit)),
        }
    }

    /// The data set of a pending request is complete: hand it to the sink and answer.
    async fn complete(
        &mut self,
        wire: &mut Wire,
        context: &AcceptedContext,
        pending: Pending,
    ) -> Result<(), AssociationError> {
        let request = pending.request;
        let receive = pending.since.elapsed();
        let refusal = match pending.target {
            Target::Refuse(refusal) => refusal,
            Target::Store(instance) => match timed(instance.finish()).await {
                (Err(e), _) => {
                    error!(error = %e, "cannot write a received instance to disk");
                    Refusal::out_of_resources("cannot write the instance to disk; retry later")
                }
                (Ok(file), flush) => {
                    let received = ReceivedInstance {
                        path: file.path().to_owned(),
                        calling_ae: self.calling_ae.clone(),
                        called_ae: self.called_ae.clone(),
                        peer: self.peer,
                        sop_class_uid: request.sop_class_uid.clone(),
                        sop_instance_uid: request.sop_instance_uid.clone(),
                        transfer_syntax: context.transfer_syntax.to_owned(),
                    };
                    match timed(self.shared.sink.store(received)).await {
                        (Ok(reply), filed) => {
                            file.keep();
                            self.stored += 1;
                            debug!(
                                sop_class = sop::sop_class(&request.sop_class_uid).map_or("?", |c| c.name),
                                sop_instance_uid = %request.sop_instance_uid,
                                comment = reply.comment.as_deref().unwrap_or(""),
                                receive_ms = receive.as_secs_f64() * 1e3,
                                flush_ms = flush.as_secs_f64() * 1e3,
                                sink_ms = filed.as_secs_f64() * 1e3,
                                "instance stored"
                            );
                            return self.respond(wire, context.id, &request, SUCCESS, None).await;
                        }
                        (Err(refusal), _) => refusal,
                    }
                }
            },
        };
        info!(
            sop_instance_uid = %request.sop_instance_uid,
            status = refusal.status,
            comment = %refusal.comment,
            "instance refused"
        );
        self.respond(wire, context.id, &request, refusal.status, Some(&refusal.comment)).await
    }

    /// Send a response command set, in as many PDUs as the peer's maximum length needs.
    async fn respond(
        &self,
        wire: &mut Wire,
        context_id: u8,
        request: &Request,
        status: u16,
        comment: Option<&str>,
    ) -> Result<(), AssociationError> {
        let bytes = Response { request, status, comment }.encode().map_err(AssociationError::Protocol)?;
        let chunk = self.peer_max_pdu.saturating_sub(PDV_HEADER_SIZE).max(1) as usize;
        let count = bytes.len().div_ceil(chunk);
        for (i, part) in bytes.chunks(chunk).enumerate() {
            let pdv = PDataValue {
                presentation_context_id: context_id,
                value_type: PDataValueType::Command,
                is_last: i + 1 == count,
                data: part.to_vec(),
            };
            wire.send(&Pdu::PData { data: vec![pdv] }).await?;
        }
        Ok(())
    }
}

/// Run `work` and measure how long it took.
async fn timed<T>(work: impl std::future::Future<Output = T>) -> (T, std::time::Duration) {
    let started = std::time::Instant::now();
    let out = work.await;
    (out, started.elapsed())
}

/// The refusal for an instance that could not be written.
fn append_refusal(e: AppendError, limit: u64) -> Refusal {
    match e {
        AppendError::TooLarge => Refusal::out_of_resources(format!("instance over the {limit}-byte limit")),
        AppendError::Io(e) => {
            error!(error = %e, "cannot write a received instance to disk");
            Refusal::out_of_resources("cannot write the instance to disk; retry later")
        }
    }
}
