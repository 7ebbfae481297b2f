//! Two jobs made to take turns on the local stack: an export's index reads and an archive
//! run's tombstones alternate, one page, then one part, then one page..., so a test of a
//! race sees the race every time instead of hoping a delay lands in it.

use async_trait::async_trait;
use audit::domain::filter::Filter;
use audit::domain::plan::{EventKey, Partition, Path};
use audit::domain::tenant::TenantId;
use audit::domain::timestamp::Timestamp;
use audit::ports::{CountPage, EventArchiver, EventIndex, IndexPage, IndexQuery, Moved, StoreError};
use std::sync::Arc;
use tokio::sync::watch;

/// How far each side has come.
#[derive(Debug, Clone, Copy, Default)]
pub struct Progress {
    pub pages: u64,
    pub parts: u64,
    pub reader_done: bool,
    pub archive_done: bool,
}

/// The turnstile both sides pass.
#[derive(Clone)]
pub struct Turns {
    tx: Arc<watch::Sender<Progress>>,
}

impl Default for Turns {
    fn default() -> Self {
        Self { tx: Arc::new(watch::Sender::new(Progress::default())) }
    }
}

impl Turns {
    async fn wait(&self, ready: impl Fn(&Progress) -> bool) {
        let mut rx = self.tx.subscribe();
        let _ = rx.wait_for(|p| ready(p)).await;
    }

    pub fn progress(&self) -> Progress {
        *self.tx.borrow()
    }

    /// The reading side ended: the archive goes on alone.
    pub fn reader_done(&self) {
        self.tx.send_modify(|p| p.reader_done = true);
    }

    /// The archive ended: the reader goes on alone.
    pub fn archive_done(&self) {
        self.tx.send_modify(|p| p.archive_done = true);
    }

    /// `index` whose every page waits for one more archived part.
    pub fn reader(&self, index: Arc<dyn EventIndex>) -> Reader {
        Reader { turns: self.clone(), inner: index }
    }

    /// `archiver` whose every part's tombstones wait for one more page read.
    pub fn archiver(&self, archiver: Arc<dyn EventArchiver>) -> Archiver {
        Archiver { turns: self.clone(), inner: archiver }
    }
}

pub struct Reader {
    turns: Turns,
    inner: Arc<dyn EventIndex>,
}

#[async_trait]
impl EventIndex for Reader {
    fn decides(&self, filter: &Filter) -> bool {
        self.inner.decides(filter)
    }

    async fn page(&self, q: &IndexQuery<'_>) -> Result<IndexPage, StoreError> {
        self.turns.wait(|p| p.parts > p.pages || p.archive_done).await;
        let page = self.inner.page(q).await;
        self.turns.tx.send_modify(|p| p.pages += 1);
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

pub struct Archiver {
    turns: Turns,
    inner: Arc<dyn EventArchiver>,
}

#[async_trait]
impl EventArchiver for Archiver {
    async fn tombstone(&self, tenant: &TenantId, moved: &[Moved]) -> Result<(), StoreError> {
        self.turns.wait(|p| p.pages >= p.parts || p.reader_done).await;
        let done = self.inner.tombstone(tenant, moved).await;
        self.turns.tx.send_modify(|p| p.parts += 1);
        done
    }
}
