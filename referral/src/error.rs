//! Errors a domain command can be refused with.

use serde::{Deserialize, Serialize};

/// Why the referral domain refused a command. Every message says what to do next.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum DomainError {
    /// A facility, specialist or case id was not found.
    #[error("{kind} `{id}` does not exist; check the id or register it first")]
    NotFound {
        /// What kind of thing was looked up ("facility", "specialist", "case").
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
    /// The case is not in a state that allows this action.
    #[error("case `{case}` is {status}; cannot {action} it (allowed from: {allowed})")]
    InvalidTransition {
        /// The case id.
        case: String,
        /// The current status.
        status: String,
        /// The action that was refused.
        action: String,
        /// Statuses the action is allowed from.
        allowed: String,
    },
    /// A field failed validation.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// The field name as the API spells it.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The actor is not allowed to do this.
    #[error("{reason}")]
    NotAllowed {
        /// Why the action was refused.
        reason: String,
    },
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
}
