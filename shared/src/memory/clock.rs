//! A clock that moves only when told, and an index whose reads move it: a store that is
//! slow by the test's own measure, so a run's deadline falls at the same step however
//! busy the machine is.

use crate::domain::filter::Filter;
use crate::domain::plan::{EventKey, Partition, Path};
use crate::domain::tenant::TenantId;
use crate::domain::timestamp::Timestamp;
use crate::ports::{Clock, CountPage, EventIndex, IndexPage, IndexQuery, StoreError};
use async_trait::async_trait;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// A clock standing still until [`ManualClock::advance`].
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<Instant>,
}

impl Default for ManualClock {
    fn default() -> Self {
        Self { now: Mutex::new(Instant::now()) }
    }
}

impl ManualClock {
    pub fn advance(&self, by: Duration) {
        let mut now = self.now.lock().unwrap_or_else(PoisonError::into_inner);
        *now += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        *self.now.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// `inner`, with each page read taking `per_page` on `clock`.
pub struct SlowPages {
    pub inner: Arc<dyn EventIndex>,
    pub clock: Arc<ManualClock>,
    pub per_page: Duration,
}

#[async_trait]
impl EventIndex for SlowPages {
    fn decides(&self, filter: &Filter) -> bool {
        self.inner.decides(filter)
    }

    async fn page(&self, q: &IndexQuery<'_>) -> Result<IndexPage, StoreError> {
        let page = self.inner.page(q).await;
        self.clock.advance(self.per_page);
        page
    }

    async fn count(&self, q: &IndexQuery<'_>) -> Result<CountPage, StoreError> {
        self.inner.count(q).await
    }

    async fn earliest(
        &self,
        tenant: &TenantId,
        path: Path,
        partition: &Partition,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Option<EventKey>, StoreError> {
        self.inner.earliest(tenant, path, partition, from, to).await
    }
}
