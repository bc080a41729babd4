//! Errors a domain command can be refused with.

use serde::{Deserialize, Serialize};

/// Why the referral domain refused a command. Every message says what went wrong and what to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum DomainError {
    /// A facility, specialist, case or transfer id was not found.
    #[error("{kind} `{id}` does not exist; check the id or register it first")]
    NotFound {
        /// What kind of thing was looked up ("facility", "specialist", "case", "transfer").
        kind: String,
        /// The id that was not found.
        id: String,
    },
    /// Something with this id is already registered.
    #[error("{kind} `{id}` is already registered; choose another id")]
    AlreadyExists {
        /// What kind of thing ("facility", "specialist").
        kind: String,
        /// The id that clashed.
        id: String,
    },
    /// The lifecycle rule for this action does not allow it from the current status.
    #[error("rule `{rule}` refuses to {action} case `{case}`: it is {status}, and {action} is allowed only from {allowed}")]
    InvalidTransition {
        /// The case id.
        case: String,
        /// The current status.
        status: String,
        /// The action that was refused.
        action: String,
        /// Statuses the action is allowed from.
        allowed: String,
        /// The name of the lifecycle rule that refused it.
        rule: String,
    },
    /// A field failed validation.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// The field name as the API spells it.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The actor may not do this.
    #[error("rule `{rule}` refuses: {reason}")]
    NotAllowed {
        /// The name of the rule that refused it.
        rule: String,
        /// Why the action was refused and who may do it.
        reason: String,
    },
    /// The receiving facility declared it cannot take the patient for this service.
    #[error("facility `{facility}` declared capacity `{declared}` for `{service}`; {}", suggestion_text(.suggestion))]
    NoCapacity {
        /// The facility that was asked.
        facility: String,
        /// The service needed.
        service: String,
        /// What it declared ("no" or "undeclared").
        declared: String,
        /// The nearest facility that can take the patient, if any.
        suggestion: Option<String>,
    },
}

fn suggestion_text(suggestion: &Option<String>) -> String {
    match suggestion {
        Some(f) => format!("the nearest facility that can take the patient is `{f}`"),
        None => {
            "no facility in the region has declared capacity for it; ask ops to check declarations".into()
        }
    }
}

impl DomainError {
    /// A "not found" error for `kind` with `id`.
    pub fn not_found(kind: &str, id: impl ToString) -> Self {
        Self::NotFound { kind: kind.to_owned(), id: id.to_string() }
    }

    /// An "already exists" error for `kind` with `id`.
    pub fn already_exists(kind: &str, id: impl ToString) -> Self {
        Self::AlreadyExists { kind: kind.to_owned(), id: id.to_string() }
    }

    /// A validation error for `field`.
    pub fn invalid(field: &str, reason: impl Into<String>) -> Self {
        Self::Invalid { field: field.to_owned(), reason: reason.into() }
    }

    /// A refusal by the rule named `rule`.
    pub fn not_allowed(rule: &str, reason: impl Into<String>) -> Self {
        Self::NotAllowed { rule: rule.to_owned(), reason: reason.into() }
    }
}
