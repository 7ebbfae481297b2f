//! Tenants' turns in memory, with the conditions the DynamoDB adapter writes.

use crate::domain::tenant::TenantId;
use crate::domain::timestamp::Timestamp;
use crate::domain::turn::{DUE_SLACK_MICROS, LOST_AFTER_SECONDS};
use crate::memory::Faults;
use crate::ports::{Noted, Passed, StoreError, Take, TurnStore};
use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

#[derive(Debug, Clone, Default)]
struct Turn {
    token: Option<String>,
    due: i64,
    held_until: Option<i64>,
    version: u64,
    state: Option<String>,
    last: Option<String>,
}

/// Turns by kind and tenant.
type Turns = HashMap<(String, TenantId), Turn>;

#[derive(Default)]
pub struct MemoryTurns {
    turns: Mutex<Turns>,
    /// Operations `note`, `install`, `take`, `pass`; detail: the tenant.
    pub faults: Faults,
}

impl MemoryTurns {
    fn lock(&self, op: &str, tenant: &TenantId) -> Result<MutexGuard<'_, Turns>, StoreError> {
        self.faults.check(op, tenant.as_str()).map_err(|k| StoreError::Unavailable(format!("injected {k:?}: {op}")))?;
        self.turns.lock().map_err(|_| StoreError::Unavailable("poisoned".into()))
    }

    /// The tenant's turn token, if it has one.
    #[must_use]
    pub fn token(&self, kind: &str, tenant: &TenantId) -> Option<String> {
        self.turns.lock().ok()?.get(&(kind.to_owned(), tenant.clone()))?.token.clone()
    }
}

#[async_trait]
impl TurnStore for MemoryTurns {
    async fn note(&self, kind: &str, tenant: &TenantId, now: Timestamp) -> Result<Noted, StoreError> {
        let mut turns = self.lock("note", tenant)?;
        let turn = turns.entry((kind.to_owned(), tenant.clone())).or_default();
        let live = turn.token.is_some()
            && turn.due <= now.micros() + DUE_SLACK_MICROS
            && (turn.due > now.plus_seconds(-LOST_AFTER_SECONDS).micros()
                || turn.held_until.is_some_and(|h| h > now.micros()));
        if live {
            turn.version += 1;
            Ok(Noted::Live)
        } else {
            Ok(Noted::Replace { token: turn.token.clone() })
        }
    }

    async fn install(
        &self,
        kind: &str,
        tenant: &TenantId,
        replaced: Option<&str>,
        token: &str,
        due: Timestamp,
    ) -> Result<bool, StoreError> {
        let mut turns = self.lock("install", tenant)?;
        let turn = turns.entry((kind.to_owned(), tenant.clone())).or_default();
        if turn.token.as_deref() != replaced {
            return Ok(false);
        }
        turn.token = Some(token.to_owned());
        turn.due = due.micros();
        turn.held_until = None;
        turn.version += 1;
        Ok(true)
    }

    async fn take(
        &self,
        kind: &str,
        tenant: &TenantId,
        token: &str,
        now: Timestamp,
        until: Timestamp,
    ) -> Result<Take, StoreError> {
        let mut turns = self.lock("take", tenant)?;
        let Some(turn) = turns.get_mut(&(kind.to_owned(), tenant.clone())) else {
            return Ok(Take::Stale { current: None });
        };
        if turn.token.as_deref() != Some(token) {
            return Ok(Take::Stale { current: turn.token.clone().max(turn.last.clone()) });
        }
        if turn.due > now.micros() + DUE_SLACK_MICROS {
            return Ok(Take::NotYet(Timestamp::from_micros(turn.due).unwrap_or(now)));
        }
        if turn.held_until.is_some_and(|h| h > now.micros()) {
            return Ok(Take::Busy);
        }
        turn.held_until = Some(until.micros());
        Ok(Take::Held { version: turn.version, state: turn.state.clone() })
    }

    async fn pass(
        &self,
        kind: &str,
        tenant: &TenantId,
        token: &str,
        next: Option<(&str, Timestamp)>,
        state: Option<&str>,
        version: Option<u64>,
    ) -> Result<Passed, StoreError> {
        let mut turns = self.lock("pass", tenant)?;
        let Some(turn) = turns.get_mut(&(kind.to_owned(), tenant.clone())) else { return Ok(Passed::Lost) };
        if turn.token.as_deref() != Some(token) {
            return Ok(Passed::Lost);
        }
        if version.is_some_and(|v| v != turn.version) {
            return Ok(Passed::Moved);
        }
        turn.last = turn.token.take();
        turn.token = next.map(|(t, _)| t.to_owned());
        turn.due = next.map_or(0, |(_, d)| d.micros());
        turn.held_until = None;
        turn.state = state.map(str::to_owned);
        Ok(Passed::Done)
    }
}
