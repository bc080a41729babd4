//! User accounts and API tokens: created and revoked by admins, audited like everything else.

use super::{validate_id, validate_text, AuditRecord, EntityKey, Region};
use crate::actor::{Actor, Role};
use crate::audit::AuditAction;
use crate::command::Outcome;
use crate::error::DomainError;
use crate::specialist::SpecialistId;
use crate::user::{ApiToken, User, UserRegistration};

impl Region {
    /// Look up a user account.
    pub fn user(&self, id: &str) -> Result<&User, DomainError> {
        self.users.get(id).ok_or_else(|| DomainError::not_found("user", id))
    }

    /// All user accounts, by id.
    pub fn users(&self) -> impl Iterator<Item = &User> {
        self.users.values()
    }

    /// Whether no user account exists yet (the first admin may then be created).
    pub fn has_no_users(&self) -> bool {
        self.users.is_empty()
    }

    /// Look up an API token by id.
    pub fn api_token(&self, id: &str) -> Option<&ApiToken> {
        self.api_tokens.get(id)
    }

    pub(super) fn add_user(
        &mut self,
        now: u64,
        actor: &Actor,
        r: &UserRegistration,
    ) -> Result<Outcome, DomainError> {
        let bootstrap = self.users.is_empty() && r.role == Role::Admin;
        if actor.role != Role::Admin && !bootstrap {
            return Err(DomainError::not_allowed("admin-manages-users", "only an admin may create users"));
        }
        validate_id("id", &r.id)?;
        if self.users.contains_key(&r.id) {
            return Err(DomainError::already_exists("user", &r.id));
        }
        if !r.password_hash.starts_with('$') {
            return Err(DomainError::invalid("password_hash", "must be a PHC string computed by the node"));
        }
        let specialist = match r.role {
            Role::System => {
                return Err(DomainError::invalid("role", "`system` is the cluster itself, not a user role"))
            }
            Role::ClinicStaff if r.facility.is_none() => {
                return Err(DomainError::invalid("facility", "clinic staff must name their facility"))
            }
            Role::Specialist => Some(r.specialist.clone().unwrap_or_else(|| SpecialistId(r.id.clone()))),
            _ => None,
        };
        if r.role != Role::Specialist && r.specialist.is_some() {
            return Err(DomainError::invalid("specialist", "only specialists carry a specialist id"));
        }
        if let Some(s) = &specialist {
            validate_id("specialist", &s.0)?;
        }
        if let Some(f) = &r.facility {
            self.facility(f)?;
        }
        let user = User {
            id: r.id.clone(),
            role: r.role,
            facility: r.facility.clone(),
            specialist,
            password_hash: r.password_hash.clone(),
            created_at_ms: now,
            disabled: false,
            sessions_valid_from_ms: 0,
        };
        let detail = format!("role {}", user.role);
        self.put_user(user);
        self.audit(
            now,
            actor,
            AuditRecord::new("user.add", AuditAction::C)
                .object(format!("user/{}", r.id))
                .detail(Some(detail)),
        );
        Ok(Outcome::Registered { id: r.id.clone() })
    }

    pub(super) fn disable_user(&mut self, now: u64, actor: &Actor, id: &str) -> Result<Outcome, DomainError> {
        require_admin(actor)?;
        let mut user = self.user(id)?.clone();
        user.disabled = true;
        user.sessions_valid_from_ms = now;
        self.put_user(user);
        self.audit(now, actor, AuditRecord::new("user.disable", AuditAction::U).object(format!("user/{id}")));
        Ok(updated(format!("user {id} disabled")))
    }

    pub(super) fn revoke_sessions(
        &mut self,
        now: u64,
        actor: &Actor,
        id: &str,
    ) -> Result<Outcome, DomainError> {
        let mut user = self.user(id)?.clone();
        let is_self = user.actor().id == actor.id && user.role == actor.role;
        if !is_self && actor.role != Role::Admin {
            return Err(DomainError::not_allowed(
                "own-or-admin-revokes-sessions",
                "only the user themself or an admin may end a user's sessions",
            ));
        }
        user.sessions_valid_from_ms = now + 1;
        self.put_user(user);
        self.audit(now, actor, AuditRecord::new("user.logout", AuditAction::U).object(format!("user/{id}")));
        Ok(updated(format!("sessions of {id} revoked")))
    }

    pub(super) fn create_api_token(
        &mut self,
        now: u64,
        actor: &Actor,
        id: &str,
        user: &str,
        secret_hash: &str,
        label: &str,
    ) -> Result<Outcome, DomainError> {
        require_admin(actor)?;
        validate_id("id", id)?;
        validate_text("label", label)?;
        self.user(user)?;
        if self.api_tokens.contains_key(id) {
            return Err(DomainError::already_exists("api token", id));
        }
        if secret_hash.len() != 64 || !secret_hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(DomainError::invalid("secret_hash", "must be a SHA-256 in hex"));
        }
        let token = ApiToken {
            id: id.to_owned(),
            user: user.to_owned(),
            secret_hash: secret_hash.to_owned(),
            label: label.to_owned(),
            created_at_ms: now,
            revoked_at_ms: None,
        };
        self.touched.push(EntityKey::ApiToken(id.to_owned()));
        self.api_tokens.insert(id.to_owned(), token);
        self.audit(
            now,
            actor,
            AuditRecord::new("token.create", AuditAction::C)
                .object(format!("token/{id}"))
                .detail(Some(format!("acts as user {user}"))),
        );
        Ok(Outcome::Registered { id: id.to_owned() })
    }

    pub(super) fn revoke_api_token(
        &mut self,
        now: u64,
        actor: &Actor,
        id: &str,
    ) -> Result<Outcome, DomainError> {
        require_admin(actor)?;
        let mut token =
            self.api_tokens.get(id).cloned().ok_or_else(|| DomainError::not_found("api token", id))?;
        if token.revoked_at_ms.is_none() {
            token.revoked_at_ms = Some(now);
        }
        self.touched.push(EntityKey::ApiToken(id.to_owned()));
        self.api_tokens.insert(id.to_owned(), token);
        self.audit(
            now,
            actor,
            AuditRecord::new("token.revoke", AuditAction::U).object(format!("token/{id}")),
        );
        Ok(updated(format!("api token {id} revoked")))
    }

    fn put_user(&mut self, user: User) {
        self.touched.push(EntityKey::User(user.id.clone()));
        self.users.insert(user.id.clone(), user);
    }
}

fn require_admin(actor: &Actor) -> Result<(), DomainError> {
    if actor.role == Role::Admin {
        Ok(())
    } else {
        Err(DomainError::not_allowed("admin-manages-users", "only an admin may manage users and tokens"))
    }
}

fn updated(what: String) -> Outcome {
    Outcome::Updated { what, cases_moved: Vec::new() }
}
