//! `yilian node run`: start a node from its config and serve until SIGINT/SIGTERM.

use crate::api;
use crate::auth::SessionKey;
use crate::config::NodeConfig;
use crate::imaging::{bulk, dimse, Imaging};
use crate::patient_key::PatientKeyer;
use anyhow::Context;
use std::sync::Arc;
use tracing::Instrument;
use yilian_consensus::{ClusterNode, NodeInfo};
use yilian_dicom::deid::Deidentifier;

/// Run the node described by `cfg` until a shutdown signal arrives.
pub async fn run(cfg: NodeConfig) -> anyhow::Result<()> {
    let span = tracing::info_span!("node", node_id = cfg.node_id);
    async move {
        let patient_keys = PatientKeyer::load(cfg.patient_secret_file()).context("loading the patient-key secret")?;
        let session_key = SessionKey::load(cfg.auth_secret_file()).context("loading the auth secret")?;
        let info =
            NodeInfo { raft_addr: cfg.advertised_raft_addr().to_owned(), api_addr: cfg.api_addr.clone() };
        let node = ClusterNode::start(cfg.node_id, info, &cfg.raft_addr, &cfg.data_dir, &cfg.tls, &cfg.raft, &cfg.transport)
            .await
            .context("starting the node")?;
        match yilian_referral::verify_chain(node.state().read().region.audit_events()) {
            Ok(n) => tracing::info!(events = n, "audit chain verified"),
            Err(e) => tracing::error!(error = %e, "AUDIT TRAIL TAMPERED: investigate before trusting this node"),
        }
        let listener = tokio::net::TcpListener::bind(&cfg.api_addr)
            .await
            .with_context(|| format!("cannot listen on api_addr {}; is the port in use?", cfg.api_addr))?;
        tracing::info!(raft_addr = %cfg.raft_addr, advertised = %cfg.advertised_raft_addr(), api_addr = %cfg.api_addr, data_dir = %cfg.data_dir.display(), congestion_control = %cfg.transport.congestion_control, "node started");
        let deidentifier = Deidentifier::new(patient_keys.derived_secret("de-identification"))
            .context("deriving the de-identification secret")?;
        let imaging = Arc::new(
            Imaging::open(node.clone(), &cfg.data_dir, deidentifier)
                .context("opening the imaging store and catalog")?,
        );
        let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
        let stopped = async move {
            let _ = stop_rx.wait_for(|stop| *stop).await;
        };
        dimse::start(&cfg.imaging, &cfg.data_dir, imaging.clone(), stopped).await?;
        let state = Arc::new(api::ApiState {
            node: node.clone(),
            patient_keys,
            imaging,
            session_key,
            session_ttl_ms: cfg.auth.session_minutes.saturating_mul(60_000),
            login_limiter: Default::default(),
            access_audit: api::access::AccessAuditor::start(node.clone()),
        });
        let transfers = bulk::start_transfers(&state, &cfg.imaging, &cfg.data_dir).await?;
        let stopping = async move {
            shutdown_signal().await;
            let _ = stop_tx.send(true);
        };
        if cfg.api.tls {
            let acceptor = crate::https::acceptor(&cfg.tls).context("loading the certificate for HTTPS")?;
            tracing::info!("HTTP API served over HTTPS with the node certificate");
            crate::https::serve(listener, acceptor, api::router(state), stopping).await;
        } else {
            let app = api::router(state).into_make_service_with_connect_info::<std::net::SocketAddr>();
            // No Nagle delay on answers: each response is one small write the client waits for.
            axum::serve(listener, app)
                .tcp_nodelay(true)
                .with_graceful_shutdown(stopping)
                .await
                .context("HTTP server failed")?;
        }
        tracing::info!("shutting down");
        transfers.stop().await;
        node.shutdown().await;
        tracing::info!("stopped");
        Ok(())
    }
    .instrument(span)
    .await
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
