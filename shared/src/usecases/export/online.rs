//! The online side of an export: the events matching a filter, newest first, over the
//! query API's own plan.

use crate::domain::budget::Reserve;
use crate::domain::filter::{Filter, Order};
use crate::domain::row::Row;
use crate::domain::tenant::{TenantId, TenantSettings};
use crate::ports::{Catalogs, EventIndex, EventReader};
use crate::usecases::export::ExportError;
use crate::usecases::merge::{Events, Fetch, IndexRead, Pull};
use crate::usecases::query::plan_partitions;
use async_trait::async_trait;

/// Items per read of the online side, across all partitions together.
const PAGE_ITEMS_TOTAL: usize = 1_000;

pub struct OnlineRows<'a> {
    events: Events<'a>,
    filter: &'a Filter,
}

impl<'a> OnlineRows<'a> {
    /// # Errors
    /// [`ExportError::Store`] when the plan's catalog lookups fail.
    pub async fn open(
        catalogs: &dyn Catalogs,
        index: &'a dyn EventIndex,
        reader: &'a dyn EventReader,
        tenant: &'a TenantId,
        settings: TenantSettings,
        filter: &'a Filter,
    ) -> Result<Self, ExportError> {
        let (path, partitions) = plan_partitions(catalogs, tenant, settings, filter, &mut 0).await?;
        let per_read = (PAGE_ITEMS_TOTAL / partitions.len().max(1)).max(50);
        let fetch = Fetch { first: per_read, most: per_read };
        let read = IndexRead {
            index,
            tenant,
            path,
            filter,
            order: Order::Desc,
            fetch,
            budget: None,
            reserve: Reserve::default(),
        };
        Ok(Self { events: read.events(partitions, reader), filter })
    }
}

impl OnlineRows<'_> {
    /// Index reads made so far: the archived side catches up after each.
    #[must_use]
    pub fn reads(&self) -> u32 {
        self.events.reads()
    }
}

#[async_trait]
impl Pull for OnlineRows<'_> {
    type Item = Row<'static>;
    type Error = ExportError;

    async fn pull(&mut self) -> Result<Option<Row<'static>>, ExportError> {
        while let Some((_, stored)) = self.events.next().await? {
            // The index applied the filters it decides; this is the definition they follow.
            if self.filter.matches(&stored.event) {
                return Ok(Some(Row::from_stored(&stored).into_owned()));
            }
        }
        Ok(None)
    }
}
