//! `yilian login`, `logout`, `user ...` and `token ...`: sessions, accounts and API tokens.

use super::Target;
use crate::api::{CreatedToken, Session};
use crate::bootstrap;
use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use serde_json::{json, Value};
use std::io::BufRead;
use yilian_referral::{Outcome, UserSummary};

/// `yilian login`
#[derive(Debug, Args)]
pub struct LoginArgs {
    #[command(flatten)]
    target: Target,
    /// Login name.
    #[arg(long)]
    user: String,
    /// Read the password from the first line of standard input instead of prompting.
    #[arg(long)]
    password_stdin: bool,
}

/// `yilian user ...`
#[derive(Debug, Args)]
pub struct UserArgs {
    #[command(flatten)]
    target: Target,
    #[command(subcommand)]
    command: UserCmd,
}

#[derive(Debug, Subcommand)]
enum UserCmd {
    /// Create a user (admin only). The password is prompted for, or read with --password-stdin.
    Add {
        /// Login name.
        id: String,
        /// clinic_staff, specialist, ops, auditor, bureau or admin.
        #[arg(long)]
        role: String,
        /// Facility the user works at (required for clinic_staff).
        #[arg(long)]
        facility: Option<String>,
        /// Specialist id the user reads as (specialists; default: the login name).
        #[arg(long)]
        specialist_id: Option<String>,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// List users (admin only).
    List,
    /// Disable a user: no more logins, and their sessions and API tokens stop working (admin).
    Disable {
        /// Login name.
        id: String,
    },
}

/// `yilian token ...`
#[derive(Debug, Args)]
pub struct TokenArgs {
    #[command(flatten)]
    target: Target,
    #[command(subcommand)]
    command: TokenCmd,
}

#[derive(Debug, Subcommand)]
enum TokenCmd {
    /// Create an API token for an integration acting as --user (admin only); printed once.
    Create {
        /// The user the integration acts as.
        #[arg(long)]
        user: String,
        /// What it is for.
        #[arg(long)]
        label: String,
    },
    /// Revoke an API token (admin only).
    Revoke {
        /// Token id.
        id: String,
    },
}

/// Read a password: from stdin's first line, or from a prompt without echo.
fn read_password(from_stdin: bool, prompt: &str) -> anyhow::Result<String> {
    let password = if from_stdin {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line).context("reading the password from stdin")?;
        line.trim_end_matches(['\r', '\n']).to_owned()
    } else {
        rpassword::prompt_password(prompt)
            .context("reading the password (use --password-stdin without a terminal)")?
    };
    if password.is_empty() {
        bail!("the password is empty");
    }
    Ok(password)
}

/// `yilian login`: store a session token in the token file (mode 0600).
pub async fn login(args: LoginArgs) -> anyhow::Result<()> {
    let password = read_password(args.password_stdin, &format!("password for {}: ", args.user))?;
    let session: Session = bootstrap::login(&args.target.anonymous_client()?, &args.user, &password).await?;
    let file = args.target.token_file();
    bootstrap::write_private(&file, &format!("{}\n", session.token))?;
    println!(
        "logged in as {} ({}); token stored in {} (valid until {} ms since the epoch)",
        session.user,
        session.role,
        file.display(),
        session.expires_at_ms
    );
    Ok(())
}

/// `yilian logout`: end every session of the logged-in user and forget the stored token.
pub async fn logout(target: Target) -> anyhow::Result<()> {
    let _: Outcome = target.client()?.post("/v1/logout", &json!({})).await?;
    let file = target.token_file();
    if file.exists() {
        std::fs::remove_file(&file).with_context(|| format!("removing {}", file.display()))?;
    }
    println!("logged out; every session of this user is revoked");
    Ok(())
}

/// Run `yilian user ...`.
pub async fn user(args: UserArgs) -> anyhow::Result<()> {
    let api = args.target.client()?;
    match args.command {
        UserCmd::Add { id, role, facility, specialist_id, password_stdin } => {
            let password = read_password(password_stdin, &format!("password for new user {id}: "))?;
            let body = json!({
                "id": id, "role": role, "facility": facility, "specialist_id": specialist_id, "password": password,
            });
            let _: Outcome = api.post("/v1/users", &body).await?;
            println!("user {id} created as {role}");
        }
        UserCmd::List => {
            let users: Vec<UserSummary> = api.get("/v1/users").await?;
            println!("{:<20} {:<13} {:<10} {:<14} DISABLED", "USER", "ROLE", "FACILITY", "SPECIALIST");
            for u in users {
                println!(
                    "{:<20} {:<13} {:<10} {:<14} {}",
                    u.id,
                    u.role.to_string(),
                    u.facility.map_or("-".into(), |f| f.0),
                    u.specialist.map_or("-".into(), |s| s.0),
                    u.disabled
                );
            }
        }
        UserCmd::Disable { id } => {
            let _: Value = api.post(&format!("/v1/users/{id}/disable"), &json!({})).await?;
            println!("user {id} disabled");
        }
    }
    Ok(())
}

/// Run `yilian token ...`.
pub async fn token(args: TokenArgs) -> anyhow::Result<()> {
    let api = args.target.client()?;
    match args.command {
        TokenCmd::Create { user, label } => {
            let t: CreatedToken = api.post("/v1/tokens", &json!({ "user": user, "label": label })).await?;
            println!("token id {} (for revocation)", t.id);
            println!("{}", t.token);
            eprintln!("store this token now: it is not shown again");
        }
        TokenCmd::Revoke { id } => {
            let _: Value = api.delete(&format!("/v1/tokens/{id}")).await?;
            println!("token {id} revoked");
        }
    }
    Ok(())
}
