//! What a request's own line in the log needs from inside its handler: the tenant, known
//! only once the token is checked. The edge ([`noting`]) gives each request a note;
//! [`crate::caller`] writes the tenant on it.

use std::sync::{Arc, OnceLock};

tokio::task_local! {
    static NOTE: Arc<Note>;
}

/// What a request's handler learned about it.
#[derive(Debug, Default)]
pub struct Note {
    tenant: OnceLock<String>,
}

impl Note {
    /// The caller's tenant, once authenticated.
    #[must_use]
    pub fn tenant(&self) -> Option<&str> {
        self.tenant.get().map(String::as_str)
    }
}

/// Runs a request's handling with `note` as its note.
pub async fn noting<F: std::future::Future>(note: Arc<Note>, f: F) -> F::Output {
    NOTE.scope(note, f).await
}

/// Records the authenticated tenant on the current request's note, if it has one.
pub(crate) fn tenant(tenant: &str) {
    let _ = NOTE.try_with(|n| n.tenant.set(tenant.to_owned()));
}
