//! Which rows of a changed table a comparison (`server::changes`) computes the cells of. A
//! table with formulas, display helpers or a `manualSort` column is computed row by row, which
//! for every row of a large table costs seconds; a comparison should cost what changed, as
//! Grist's does (it composes its action history). When nothing a table's cells read can have
//! changed but each row's own stored record, only the records that differ are computed.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use crate::model::{referenced_table, Doc, Record, Table};

/// The rows whose cells can differ between the two states, when that is knowable from their
/// stored records alone. A cell reads its own row, and other rows only through a `Ref` or
/// `RefList` column's table (`crate::eval`). So when the table kept its id and columns, every
/// other table of the doc is the same (shared, unchanged) in both states, and no column of any
/// table refers to this one (else a formula could read this table's other rows back, through
/// itself or another table), a row stored alike in both has the same cells. Only the others are
/// computed: a comparison costs what changed, not the table's size (a `manualSort` column alone
/// makes every table computed). `None`: compute every row.
pub(super) fn rows_that_can_differ(
    left: &Doc,
    lt: &Table,
    right: &Doc,
    rt: &Table,
) -> Option<HashSet<i64>> {
    if lt.id != rt.id || lt.columns != rt.columns {
        return None;
    }
    let referred_to = right.tables.iter().any(|t| {
        t.columns
            .iter()
            .any(|c| referenced_table(c.col_type()) == Some(rt.id.as_str()))
    });
    let others_shared = left.tables.len() == right.tables.len()
        && right
            .tables
            .iter()
            .filter(|t| t.table_ref() != rt.table_ref())
            .all(|t| left.tables.iter().any(|l| Arc::ptr_eq(l, t)));
    if referred_to || !others_shared {
        return None;
    }
    Some(records_that_differ(&lt.records, &rt.records))
}

/// The ids of the records in one list and not the other, or in both but stored differently: by
/// one walk of the two when both are in id order (as Grist keeps them), else by id lookups.
fn records_that_differ(before: &[Record], after: &[Record]) -> HashSet<i64> {
    let in_order = |rs: &[Record]| rs.windows(2).all(|w| w[0].id < w[1].id);
    let mut differ = HashSet::new();
    if in_order(before) && in_order(after) {
        let (mut b, mut a) = (before.iter().peekable(), after.iter().peekable());
        loop {
            match (b.peek(), a.peek()) {
                (Some(x), Some(y)) if x.id == y.id => {
                    if x != y {
                        differ.insert(x.id);
                    }
                    b.next();
                    a.next();
                }
                (Some(x), Some(y)) if x.id < y.id => {
                    differ.insert(x.id);
                    b.next();
                }
                (_, Some(y)) => {
                    differ.insert(y.id);
                    a.next();
                }
                (Some(x), None) => {
                    differ.insert(x.id);
                    b.next();
                }
                (None, None) => return differ,
            }
        }
    }
    let by_id: HashMap<i64, &Record> = before.iter().map(|r| (r.id, r)).collect();
    let ids_after: HashSet<i64> = after.iter().map(|r| r.id).collect();
    differ.extend(
        after
            .iter()
            .filter(|r| by_id.get(&r.id).is_none_or(|x| *x != *r))
            .map(|r| r.id),
    );
    differ.extend(by_id.keys().filter(|id| !ids_after.contains(id)));
    differ
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn records(rows: &[(i64, &str)]) -> Vec<Record> {
        rows.iter()
            .map(|(id, v)| Record::new(*id, json!({"A": v})).unwrap())
            .collect()
    }

    #[test]
    fn records_out_of_id_order_differ_as_in_order_ones_do() {
        let before = records(&[(1, "a"), (2, "b"), (4, "d"), (5, "e")]);
        let after = records(&[(1, "a"), (2, "B"), (3, "c"), (5, "e"), (6, "f")]);
        let want: HashSet<i64> = [2, 3, 4, 6].into();
        assert_eq!(records_that_differ(&before, &after), want);
        let (mut b, mut a) = (before.clone(), after.clone());
        b.reverse();
        a.swap(0, 3);
        assert_eq!(records_that_differ(&b, &a), want);
        assert_eq!(records_that_differ(&before, &before), HashSet::new());
    }
}
