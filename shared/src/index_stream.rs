//! One ordered stream over several index partitions: each read by paged `Query` in `ts`
//! order, one page per partition at a time, and merged by `ts`. The archive reads a day
//! this way (oldest first, every shard of `by_time`); an export reads its range (newest
//! first, over the query planner's partitions and filter expression).

use crate::filter::Filter;
use crate::item::{self, Item};
use crate::keys::{self, Index};
use crate::planner::Expr;
use crate::reader::index_query;
use crate::retry::retry;
use crate::store::{Store, StoreError};
use aws_sdk_dynamodb::types::AttributeValue;
use std::collections::{HashMap, VecDeque};

struct Partition {
    pk: String,
    buf: VecDeque<Item>,
    next: Option<HashMap<String, AttributeValue>>,
    started: bool,
}

pub struct IndexStream<'a> {
    store: &'a Store,
    index: Index,
    filter: Filter,
    expr: Expr,
    asc: bool,
    partitions: Vec<Partition>,
    limit: i32,
}

impl<'a> IndexStream<'a> {
    /// Reads `partitions` of `index` over the filter's time range, `expr` applied by
    /// DynamoDB; `page_items` bounds the items buffered across all partitions together.
    #[must_use]
    pub fn new(
        store: &'a Store,
        index: Index,
        partitions: Vec<String>,
        filter: &Filter,
        expr: Expr,
        asc: bool,
        page_items: usize,
    ) -> Self {
        let limit = i32::try_from((page_items / partitions.len().max(1)).max(50)).unwrap_or(50);
        let partitions = partitions
            .into_iter()
            .map(|pk| Partition { pk, buf: VecDeque::new(), next: None, started: false })
            .collect();
        Self { store, index, filter: filter.clone(), expr, asc, partitions, limit }
    }

    /// The next item in `ts` order, or `None` at the end.
    ///
    /// # Errors
    /// [`StoreError`] when a page cannot be read after retries.
    pub async fn next(&mut self) -> Result<Option<Item>, StoreError> {
        loop {
            // A page can come back empty with more to read (the filter dropped it all).
            let empty: Vec<usize> = (0..self.partitions.len())
                .filter(|&i| {
                    let p = &self.partitions[i];
                    p.buf.is_empty() && (!p.started || p.next.is_some())
                })
                .collect();
            if empty.is_empty() {
                break;
            }
            let pages = futures::future::join_all(empty.iter().map(|&i| self.fetch(i))).await;
            for (&i, page) in empty.iter().zip(pages) {
                let (items, next) = page?;
                let p = &mut self.partitions[i];
                p.buf.extend(items);
                p.next = next;
                p.started = true;
            }
        }
        let ts = |p: &Partition| p.buf.front().and_then(|it| item::string(it, keys::TS).ok()).cloned();
        let heads = (0..self.partitions.len()).filter_map(|i| ts(&self.partitions[i]).map(|t| (t, i)));
        let best = if self.asc { heads.min() } else { heads.max() };
        Ok(best.and_then(|(_, i)| self.partitions[i].buf.pop_front()))
    }

    async fn fetch(&self, i: usize) -> Result<(Vec<Item>, Option<HashMap<String, AttributeValue>>), StoreError> {
        let p = &self.partitions[i];
        let start = p.next.clone();
        let run = retry(self.store.backoff(), "Query stream page", || {
            index_query(self.store, self.index, &p.pk, &self.filter, &self.expr)
                .scan_index_forward(self.asc)
                .limit(self.limit)
                .set_exclusive_start_key(start.clone())
                .send()
        })
        .await;
        let out = run.result.map_err(|e| StoreError::from_sdk(&e))?;
        Ok((out.items.unwrap_or_default(), out.last_evaluated_key))
    }
}
