//! The codec lives in `yilian_referral::codec` so every crate encodes through one module; this
//! re-export keeps consensus call sites short.

pub use yilian_referral::codec::*;
