//! Who is acting: the `X-Yilian-Actor` header.
//!
//! Format: `<role>:<id>` or `<role>:<id>@<facility>`, where role is `clinic_staff`,
//! `specialist` or `ops`; clinic staff must name their facility. Example:
//! `X-Yilian-Actor: clinic_staff:nurse-li@TS-LJ`.

use super::ApiError;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use yilian_referral::{Actor, FacilityId, Role};

/// The header naming the actor.
pub const ACTOR_HEADER: &str = "x-yilian-actor";

/// The actor a request acts as.
pub struct ActingAs(pub Actor);

/// Parse an actor from its header form.
pub fn parse_actor(text: &str) -> Result<Actor, String> {
    let (role, rest) = text.trim().split_once(':').ok_or("expected <role>:<id>[@<facility>]")?;
    let role = match role {
        "clinic_staff" => Role::ClinicStaff,
        "specialist" => Role::Specialist,
        "ops" => Role::Ops,
        other => return Err(format!("unknown role `{other}`; use clinic_staff, specialist or ops")),
    };
    let (id, facility) = match rest.split_once('@') {
        Some((id, f)) => (id, Some(FacilityId(f.to_owned()))),
        None => (rest, None),
    };
    if id.is_empty() {
        return Err("the actor id is empty".into());
    }
    if role == Role::ClinicStaff && facility.is_none() {
        return Err("clinic staff must name their facility: clinic_staff:<id>@<facility>".into());
    }
    Ok(Actor { role, id: id.to_owned(), facility })
}

/// The header form of `actor`.
pub fn header_value(actor: &Actor) -> String {
    match &actor.facility {
        Some(f) => format!("{}:{}@{}", actor.role, actor.id, f),
        None => format!("{}:{}", actor.role, actor.id),
    }
}

#[axum::async_trait]
impl<S: Send + Sync> FromRequestParts<S> for ActingAs {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let value = parts.headers.get(ACTOR_HEADER).ok_or_else(|| {
            ApiError::bad_request(format!(
                "this request changes data: name who is acting in the {ACTOR_HEADER} header, \
                 e.g. `clinic_staff:nurse-li@TS-LJ`, `specialist:DR-AN-CARD` or `ops:admin`"
            ))
        })?;
        let text =
            value.to_str().map_err(|_| ApiError::bad_request(format!("{ACTOR_HEADER} is not ASCII")))?;
        parse_actor(text).map(ActingAs).map_err(|e| ApiError::bad_request(format!("{ACTOR_HEADER}: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actors_round_trip_and_bad_ones_are_explained() {
        for text in ["clinic_staff:nurse-li@TS-LJ", "specialist:DR-1", "ops:admin"] {
            assert_eq!(header_value(&parse_actor(text).expect("parse")), text);
        }
        assert!(parse_actor("clinic_staff:nurse").expect_err("facility").contains("facility"));
        assert!(parse_actor("doctor:x").expect_err("role").contains("unknown role"));
        assert!(parse_actor("nobody").is_err());
    }
}
