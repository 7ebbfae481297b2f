//! The service's own voice (contract section 1): the events it writes about itself
//! (export requests, alert rule changes) have actions in the `audit_log.` namespace and
//! ids that begin `audit_log:`. A client may use neither, so no client event reads as the
//! service's record, and no client write can take an id first that the service needs,
//! which would make the service's own write a conflict and block the change it logs.

/// The category of the service's own actions (`audit_log.export`, `audit_log.alert_create`).
pub const ACTION_CATEGORY: &str = "audit_log";
/// How every id of the service's own events begins.
pub const ID_PREFIX: &str = "audit_log:";

/// Who wrote an event, which decides whether the reserved forms are allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A client: `POST /v1/events`, the ingest queue, an import by `auditlog convert`.
    Client,
    /// The service itself, and events read back from storage (written by either).
    Service,
}

/// The id of one of the service's own events: `audit_log:` and `key`, which names what
/// the event is about (`export:{job id}`, `alert:{rule id}:{version}`).
#[must_use]
pub fn event_id(key: &str) -> String {
    format!("{ID_PREFIX}{key}")
}

/// Whether `action` is in the service's namespace (any case: a near-miss would still
/// read as the service's to a person).
#[must_use]
pub fn is_reserved_action(action: &str) -> bool {
    action.split('.').next().is_some_and(|category| category.eq_ignore_ascii_case(ACTION_CATEGORY))
}

/// Whether `id` has the form of the service's own ids, compared without case so that
/// no reader that folds case can mistake a client's id for one.
#[must_use]
pub fn is_reserved_id(id: &str) -> bool {
    id.get(..ID_PREFIX.len()).is_some_and(|head| head.eq_ignore_ascii_case(ID_PREFIX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_audit_log_namespace_is_reserved_in_any_case() {
        for action in ["audit_log.export", "audit_log.alert_delete", "AUDIT_LOG.export", "Audit_Log.x.y"] {
            assert!(is_reserved_action(action), "{action}");
        }
        for action in ["audit.login", "audit_logs.export", "my_audit_log.export", "channel.audit_log", "auditlog.x"] {
            assert!(!is_reserved_action(action), "{action}");
        }
    }

    #[test]
    fn ids_beginning_audit_log_colon_are_reserved_in_any_case() {
        for id in ["audit_log:export:1", "AUDIT_LOG:alert:r:deleted", "Audit_Log:", "audit_log:"] {
            assert!(is_reserved_id(id), "{id}");
        }
        for id in ["audit_log", "audit_log.x", "audit_logs:x", "export:1", "alert:r:deleted", "x:audit_log:1", "é"] {
            assert!(!is_reserved_id(id), "{id}");
        }
    }

    #[test]
    fn the_service_ids_are_reserved_ones() {
        assert_eq!(event_id("export:0190-ab"), "audit_log:export:0190-ab");
        assert!(is_reserved_id(&event_id("alert:r1:deleted")));
    }
}
