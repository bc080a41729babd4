//! Which congestion controller the data a node (or an uploader) sends over QUIC follows: the
//! `[transport]` table of the node's config, and `yilian upload --congestion`.
//!
//! The controller belongs to the sending side: a county node fetching a clinic's study receives
//! what the clinic's node sends, so the clinic's setting decides how its uplink is used.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

/// The congestion controller of every QUIC connection a node opens or accepts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CongestionControl {
    /// Loss-based (QUIC's and TCP's usual controller): fills clean links, and backs off at every
    /// lost packet, so on a path that drops 1 % of packets at random with a 20 ms round trip
    /// it sends at about 7 Mbit/s whatever the link's rate.
    #[default]
    Cubic,
    /// Model-based (quinn's BBR, which quinn marks experimental): keeps sending at the rate it
    /// measures the path delivering, so random loss and reordering cost little (10× Cubic's
    /// rate at 1 % loss); on clean short links about 5 % slower, and the first image of a
    /// prefetch comes later. For sites whose uplink loses packets (radio, long rural lines).
    Bbr,
}

impl CongestionControl {
    /// Make `transport` use this controller.
    pub fn apply(self, transport: &mut quinn::TransportConfig) {
        match self {
            CongestionControl::Cubic => {
                transport.congestion_controller_factory(Arc::new(quinn::congestion::CubicConfig::default()))
            }
            CongestionControl::Bbr => {
                transport.congestion_controller_factory(Arc::new(quinn::congestion::BbrConfig::default()))
            }
        };
    }
}

/// A name that is not a congestion controller.
#[derive(Debug, thiserror::Error)]
#[error("unknown congestion controller {0:?}: use \"cubic\" (the default) or \"bbr\" (for lossy uplinks)")]
pub struct UnknownCongestionControl(String);

impl FromStr for CongestionControl {
    type Err = UnknownCongestionControl;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "cubic" => Ok(CongestionControl::Cubic),
            "bbr" => Ok(CongestionControl::Bbr),
            _ => Err(UnknownCongestionControl(s.to_owned())),
        }
    }
}

impl fmt::Display for CongestionControl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CongestionControl::Cubic => "cubic",
            CongestionControl::Bbr => "bbr",
        })
    }
}

/// The `[transport]` table of a node's config: how its QUIC connections send.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TransportSettings {
    /// Congestion controller for everything this node sends over QUIC (Raft messages, and the
    /// images other nodes fetch from it): `"cubic"` (default) or `"bbr"`.
    pub congestion_control: CongestionControl,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_both_ways_and_a_wrong_one_says_what_to_use() {
        for c in [CongestionControl::Cubic, CongestionControl::Bbr] {
            assert_eq!(c.to_string().parse::<CongestionControl>().ok(), Some(c));
        }
        assert_eq!(" BBR ".parse::<CongestionControl>().ok(), Some(CongestionControl::Bbr));
        let wrong = "reno".parse::<CongestionControl>().err().map(|e| e.to_string()).unwrap_or_default();
        assert!(wrong.contains("reno") && wrong.contains("cubic") && wrong.contains("bbr"), "{wrong}");
    }

    #[test]
    fn the_default_is_cubic() {
        assert_eq!(TransportSettings::default().congestion_control, CongestionControl::Cubic);
    }
}
