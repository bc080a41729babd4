//! Reading and writing whole PDUs on a TCP connection, with the idle timeout.

use super::error::AssociationError;
use dicom_ul::pdu::{read_pdu, write_pdu, AbortRQServiceProviderReason, AbortRQSource, Pdu, PDU_HEADER_SIZE};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::time::timeout;

/// A connection carrying DICOM upper-layer PDUs.
pub(crate) struct Wire {
    stream: BufReader<TcpStream>,
    idle: Duration,
    out: Vec<u8>,
}

impl Wire {
    /// Wrap an accepted connection; reads and writes give up after `idle`.
    pub(crate) fn new(stream: TcpStream, idle: Duration) -> Self {
        Wire { stream: BufReader::new(stream), idle, out: Vec::new() }
    }

    /// Read one PDU whose length (after the 6-byte header) is at most `max_len`. The length is
    /// checked before anything is allocated for the body.
    pub(crate) async fn read(&mut self, max_len: u32) -> Result<Pdu, AssociationError> {
        timeout(self.idle, self.read_unbounded(max_len))
            .await
            .map_err(|_| AssociationError::IdleTimeout(self.idle))?
    }

    async fn read_unbounded(&mut self, max_len: u32) -> Result<Pdu, AssociationError> {
        let mut header = [0u8; PDU_HEADER_SIZE as usize];
        let first = self.stream.read(&mut header[..1]).await?;
        if first == 0 {
            return Err(AssociationError::Closed);
        }
        self.stream.read_exact(&mut header[1..]).await?;
        let len = u32::from_be_bytes([header[2], header[3], header[4], header[5]]);
        if len > max_len {
            return Err(AssociationError::MalformedPdu(format!(
                "PDU of type {:#04x} declares {len} bytes, over the {max_len}-byte limit",
                header[0]
            )));
        }
        let mut bytes = Vec::with_capacity(header.len() + len as usize);
        bytes.extend_from_slice(&header);
        bytes.resize(header.len() + len as usize, 0);
        self.stream.read_exact(&mut bytes[header.len()..]).await?;
        match read_pdu(&bytes[..], max_len, true) {
            Ok(Some(pdu)) => Ok(pdu),
            Ok(None) => Err(AssociationError::MalformedPdu("the PDU ends early".to_owned())),
            Err(e) => Err(AssociationError::MalformedPdu(e.to_string())),
        }
    }

    /// Send one PDU.
    pub(crate) async fn send(&mut self, pdu: &Pdu) -> Result<(), AssociationError> {
        self.out.clear();
        write_pdu(&mut self.out, pdu).map_err(|e| {
            AssociationError::Protocol(format!("cannot encode a {}: {e}", pdu.short_description()))
        })?;
        let stream = &mut self.stream;
        let out = &self.out;
        timeout(self.idle, async move {
            stream.write_all(out).await?;
            stream.flush().await
        })
        .await
        .map_err(|_| AssociationError::WriteTimeout(self.idle))?
        .map_err(AssociationError::Io)
    }

    /// Send an A-ABORT (best effort) and close the connection.
    pub(crate) async fn abort(mut self, reason: AbortRQServiceProviderReason) {
        let _ = self.send(&Pdu::AbortRQ { source: AbortRQSource::ServiceProvider(reason) }).await;
        self.close().await;
    }

    /// Close the connection (best effort).
    pub(crate) async fn close(mut self) {
        let _ = timeout(self.idle, self.stream.get_mut().shutdown()).await;
    }
}
