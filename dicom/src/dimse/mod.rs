//! DIMSE storage SCP: receives instances from modalities and PACS over DICOM networking
//! (C-STORE, and C-ECHO for connectivity checks).
//!
//! [`serve`] accepts associations on a TCP listener, one task each, up to
//! [`ScpConfig::max_associations`] at once. It accepts the Verification SOP class and every
//! storage SOP class in [`crate::sop`], with the transfer syntaxes ingest accepts (Explicit VR
//! Little Endian preferred, then Implicit VR Little Endian, else the first acceptable one
//! proposed). A C-STORE data set is streamed into a Part-10 file in [`ScpConfig::tmp_dir`] as
//! its fragments arrive (memory per association: one PDU and a 256 KiB write buffer), within
//! [`ScpConfig::max_instance_bytes`]; the complete, fsynced file goes to the
//! [`InstanceSink`], whose answer becomes the C-STORE response status.
//!
//! Command sets are built and parsed here with dicom-object (dicom-ul provides associations
//! and PDUs only). Temp files are removed on every path that does not hand them to the sink.

mod association;
mod command;
mod config;
mod error;
mod negotiate;
mod part10;
mod server;
mod sink;
mod wire;

pub use config::{ScpConfig, MAX_PDU_LENGTH, MIN_PDU_LENGTH};
pub use error::DimseError;
pub use server::serve;
pub use sink::{InstanceSink, ReceivedInstance, Refusal, StoredReply};
