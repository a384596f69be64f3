//! Who may connect and what they may do (SPEC §7).
//!
//! - [`users`]: the user store (`<data>/users.json`): names, roles and SCRAM-SHA-256
//!   verifiers, never passwords.
//! - [`privileges`]: role checks on the logical plan (views and subqueries included) and
//!   the row filter that scopes a `team:X` user to team X's usage.

pub mod privileges;
pub mod users;

use std::fmt;
use std::str::FromStr;

/// What a user may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// Everything: configuration tables, external tables, server files.
    Admin,
    /// Read-only access to every table and view.
    Analyst,
    /// `INSERT` and `COPY ... FROM STDIN` into `usage`, nothing else.
    Ingest,
    /// Read-only, and only the usage rows attributed to this team (and everything derived
    /// from them).
    Team(String),
}

impl FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "admin" => Ok(Role::Admin),
            "analyst" => Ok(Role::Analyst),
            "ingest" => Ok(Role::Ingest),
            _ => match s.strip_prefix("team:") {
                Some(team) if !team.trim().is_empty() => Ok(Role::Team(team.to_owned())),
                _ => Err(format!(
                    "unknown role '{s}': expected admin, analyst, ingest or team:TEAM"
                )),
            },
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Role::Admin => f.write_str("admin"),
            Role::Analyst => f.write_str("analyst"),
            Role::Ingest => f.write_str("ingest"),
            Role::Team(team) => write!(f, "team:{team}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_round_trip_and_reject_unknown_names() {
        for text in ["admin", "analyst", "ingest", "team:search", "team:a:b"] {
            let role: Role = text.parse().expect(text);
            assert_eq!(role.to_string(), text);
        }
        assert_eq!("team:x".parse::<Role>(), Ok(Role::Team("x".into())));
        for bad in ["", "root", "team:", "team: ", "Admin"] {
            assert!(bad.parse::<Role>().is_err(), "{bad:?} accepted");
        }
    }
}
