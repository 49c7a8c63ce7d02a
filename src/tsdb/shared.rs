//! The store shared on the one work thread: the collection cycle appends through it, the HTTP
//! handlers query through it, the main loop polls and flushes it.
//!
//! Owns: [`SharedStore`], a cloneable handle (`Rc<RefCell<Store>>`) that implements both
//! [`Appender`] and [`Querier`], so each user holds only the seam it needs. Must not touch:
//! anything across threads (it is `!Send` on purpose).

use super::{AppendError, Appender, LatestSink, PairsSink, Querier, SeriesSamples, Store};
use crate::model::{Labels, Matcher, Sample, Timestamp};
use std::cell::RefCell;
use std::rc::Rc;

#[derive(Clone)]
pub struct SharedStore(pub Rc<RefCell<Store>>);

impl SharedStore {
    pub fn new(store: Store) -> SharedStore {
        SharedStore(Rc::new(RefCell::new(store)))
    }
}

impl Appender for SharedStore {
    fn append(&mut self, labels: &Labels, t: Timestamp, v: f64) -> Result<(), AppendError> {
        self.0.borrow_mut().append(labels, t, v)
    }
    fn append_parts(
        &mut self,
        name: &str,
        pairs: &[(&str, &str)],
        t: Timestamp,
        v: f64,
    ) -> Result<(), AppendError> {
        self.0.borrow_mut().append_parts(name, pairs, t, v)
    }
}

impl Querier for SharedStore {
    fn select(&self, matchers: &[Matcher], mint: Timestamp, maxt: Timestamp) -> Vec<SeriesSamples> {
        self.0.borrow().select(matchers, mint, maxt)
    }
    fn select_each(
        &self,
        matchers: &[Matcher],
        mint: Timestamp,
        maxt: Timestamp,
        f: &mut dyn FnMut(&Labels, &[Sample]),
    ) {
        self.0.borrow().select_each(matchers, mint, maxt, f)
    }
    fn select_latest(
        &self,
        matchers: &[Matcher],
        mint: Timestamp,
        maxt: Timestamp,
        f: &mut LatestSink<'_>,
    ) -> bool {
        // The store stays borrowed while `f` runs: it must not append through this handle.
        self.0.borrow().select_latest(matchers, mint, maxt, f)
    }
    fn select_pairs_each(
        &self,
        matchers: &[Matcher],
        mint: Timestamp,
        maxt: Timestamp,
        f: &mut PairsSink<'_>,
    ) -> bool {
        // As select_latest: the store stays borrowed while `f` runs.
        self.0.borrow().select_pairs_each(matchers, mint, maxt, f)
    }
    fn label_names(&self, matchers: &[Matcher], mint: Timestamp, maxt: Timestamp) -> Vec<String> {
        self.0.borrow().label_names(matchers, mint, maxt)
    }
    fn label_values(
        &self,
        name: &str,
        matchers: &[Matcher],
        mint: Timestamp,
        maxt: Timestamp,
    ) -> Vec<String> {
        self.0.borrow().label_values(name, matchers, mint, maxt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tsdb::Options;

    #[test]
    fn appends_through_one_handle_are_seen_through_another() {
        let shared = SharedStore::new(Store::new(Options::default()));
        let mut app: Box<dyn Appender> = Box::new(shared.clone());
        app.append(&Labels::from_pairs([("__name__", "up")]), 1000, 1.0)
            .unwrap();
        let q: &dyn Querier = &shared;
        assert_eq!(q.select(&[], 0, 2000).len(), 1);
        assert_eq!(shared.0.borrow().stats().samples_appended, 1);
    }

    /// A plain-selector answer borrows labels from the store only while the store is borrowed
    /// for it: appends between two queries are seen by the next one, never mixed into one.
    #[test]
    fn latest_samples_through_the_handle_follow_appends_between_queries() {
        let shared = SharedStore::new(Store::new(Options::default()));
        let mut app = shared.clone();
        let up = |i: &str| Labels::from_pairs([("__name__", "up"), ("instance", i)]);
        let latest = |q: &SharedStore| {
            let mut got = Vec::new();
            assert!(q.select_latest(&[], 0, i64::MAX, &mut |pairs, s| {
                got.push((Labels::from_pairs(pairs.iter().copied()), s.t, s.v));
                true
            }));
            got
        };
        app.append(&up("b"), 1000, 1.0).unwrap();
        assert_eq!(latest(&shared), vec![(up("b"), 1000, 1.0)]);
        app.append(&up("a"), 2000, 2.0).unwrap();
        app.append(&up("b"), 2000, 3.0).unwrap();
        assert_eq!(
            latest(&shared),
            vec![(up("a"), 2000, 2.0), (up("b"), 2000, 3.0)]
        );
    }
}
