//! Turning the input changes a transform has not seen into pending keys (above each input's
//! watermark), paging through them, and `etl plan`'s counts of what a run would do.

use etl_core::store::{Capture, PlanCounts, StoreError};
use etl_core::{Key, StepDef};

use crate::error::db;
use crate::ident::{column_list, quote_ident};
use crate::schema::{keys_table, meta_table};

use super::sql::*;
use super::PgStore;

impl PgStore {
    /// Keys of a bookkeeping table matching `filter`, in key order after `after`, at most `limit`
    /// (keyset pagination: each page is an index range scan, however deep).
    pub(super) async fn page_of_keys(
        &self,
        table: &str,
        key: &[String],
        filter: &str,
        after: Option<&Key>,
        limit: usize,
        what: &str,
    ) -> Result<Vec<Key>, StoreError> {
        let width = key.len();
        let cols = column_list(key, None);
        let (cond, params) = match after {
            Some(_) => (
                format!(
                    "AND ({cols}) > ({})",
                    (1..=width)
                        .map(|i| format!("${i}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                width,
            ),
            None => (String::new(), 0),
        };
        let sql = format!(
            "SELECT {cols} FROM {table} WHERE {filter} {cond} ORDER BY {cols} LIMIT ${}",
            params + 1
        );
        let mut q = sqlx::query(&sql);
        if let Some(a) = after {
            for p in a.parts() {
                q = q.bind(p.clone());
            }
        }
        let rows = q
            .bind(limit as i64)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| db(what, e))?;
        rows.iter()
            .map(|r| key_of(r, width))
            .collect::<Result<_, _>>()
            .map_err(|e| db(what, e))
    }

    pub(super) async fn watermark(&self, step: &str, input: &str) -> Result<i64, StoreError> {
        let wm: Option<i64> = sqlx::query_scalar(&format!(
            "SELECT last_seq FROM {book}.step_watermarks WHERE step = $1 AND input_table = $2",
            book = crate::namespace::book_schema()
        ))
        .bind(step)
        .bind(input)
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| db("reading a watermark", e))?;
        Ok(wm.unwrap_or(0))
    }

    pub(super) async fn recorded_fingerprint(
        &self,
        step: &str,
    ) -> Result<Option<String>, StoreError> {
        let fp: Option<Option<String>> = sqlx::query_scalar(&format!(
            "SELECT fingerprint FROM {book}.steps WHERE step = $1",
            book = crate::namespace::book_schema()
        ))
        .bind(step)
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| db("reading a step fingerprint", e))?;
        Ok(fp.flatten())
    }

    pub(super) async fn capture_changes(
        &self,
        step: &StepDef,
        full_refresh: bool,
    ) -> Result<Capture, StoreError> {
        let keys = keys_table(&step.name);
        let kcols = column_list(&step.key, None);
        let ctx = || format!("capturing the changes of step `{}`", step.name);
        let mut tx = self.pool.begin().await.map_err(|e| db(ctx(), e))?;
        // Two captures of one step never interleave: runs hold the step's lock, and this
        // transaction's advisory lock covers anything else. It writes nothing (a row lock
        // would), so a capture that finds no change commits without waiting for the disk.
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(crate::lock::lock_id(&format!("capture:{}", step.name)))
            .execute(&mut *tx)
            .await
            .map_err(|e| db(ctx(), e))?;
        let recorded: Option<Option<String>> = sqlx::query_scalar(&format!(
            "SELECT fingerprint FROM {book}.steps WHERE step = $1",
            book = crate::namespace::book_schema()
        ))
        .bind(&step.name)
        .fetch_optional(&mut *tx)
        .await
        .map_err(|e| db(ctx(), e))?;
        let recorded = recorded.flatten();
        let full = full_refresh || recorded.as_deref() != Some(step.fingerprint.as_str());
        if full {
            sqlx::query(&format!(
                "UPDATE {keys} SET pending = true WHERE NOT pending"
            ))
            .execute(&mut *tx)
            .await
            .map_err(|e| db(ctx(), e))?;
        }
        // Every input's watermark and newest change, in two queries.
        let stored: std::collections::HashMap<String, i64> = sqlx::query_as(&format!(
            "SELECT input_table, last_seq FROM {book}.step_watermarks WHERE step = $1",
            book = crate::namespace::book_schema()
        ))
        .bind(&step.name)
        .fetch_all(&mut *tx)
        .await
        .map_err(|e| db(ctx(), e))?
        .into_iter()
        .collect();
        let newest = newest_changes(&mut tx, step)
            .await
            .map_err(|e| db(ctx(), e))?;
        let mut changed_inputs = Vec::new();
        for (input, &max) in step.inputs.iter().zip(&newest) {
            let meta = meta_table(&input.table);
            let stored_wm = stored.get(&input.table).copied();
            let wm: i64 = if full { 0 } else { stored_wm.unwrap_or(0) };
            if max > wm {
                changed_inputs.push(input.table.clone());
                let key_cols: Vec<String> = input.join.iter().map(|(k, _)| k.clone()).collect();
                let in_cols: Vec<String> = input.join.iter().map(|(_, c)| c.clone()).collect();
                if input.covers_key {
                    // Projected to the key's column order.
                    let projected = key_projection(step, input)
                        .iter()
                        .map(|c| format!("m.{}", quote_ident(c)))
                        .collect::<Vec<_>>()
                        .join(", ");
                    let filter = if full {
                        "m.delete_ts IS NULL"
                    } else {
                        "m.seq > $1"
                    };
                    let insert = format!(
                        "INSERT INTO {keys} ({kcols}) SELECT DISTINCT {projected} FROM {meta} AS m WHERE {filter}"
                    );
                    if full && super::first_capture::is_empty(&mut tx, &keys).await? {
                        // Every key is new: load them into the bare table (see first_capture).
                        let pending_index = crate::schema::pending_index(&step.name);
                        super::first_capture::set_aside(&mut tx, &keys, &pending_index)
                            .await?
                            .load_and_restore(&mut tx, &insert)
                            .await?;
                    } else {
                        let sql =
                            format!("{insert} ON CONFLICT ({kcols}) DO UPDATE SET pending = true");
                        let q = sqlx::query(&sql);
                        let q = if full { q } else { q.bind(wm) };
                        q.execute(&mut *tx).await.map_err(|e| db(ctx(), e))?;
                    }
                } else if !full && input.join.is_empty() {
                    sqlx::query(&format!(
                        "UPDATE {keys} SET pending = true WHERE NOT pending"
                    ))
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| db(ctx(), e))?;
                } else if !full {
                    let sel = in_cols
                        .iter()
                        .enumerate()
                        .map(|(i, c)| format!("m.{} AS k{i}", quote_ident(c)))
                        .collect::<Vec<_>>()
                        .join(", ");
                    let sql = format!(
                        "UPDATE {keys} AS t SET pending = true
                           FROM (SELECT DISTINCT {sel} FROM {meta} AS m WHERE m.seq > $1) AS c
                          WHERE NOT t.pending AND {}",
                        join_on("t", &key_cols, "c")
                    );
                    sqlx::query(&sql)
                        .bind(wm)
                        .execute(&mut *tx)
                        .await
                        .map_err(|e| db(ctx(), e))?;
                }
            }
            if stored_wm != Some(max) {
                sqlx::query(
                    &format!("INSERT INTO {book}.step_watermarks (step, input_table, last_seq) VALUES ($1, $2, $3)
                     ON CONFLICT (step, input_table) DO UPDATE SET last_seq = EXCLUDED.last_seq", book = crate::namespace::book_schema()),
                )
                .bind(&step.name)
                .bind(&input.table)
                .bind(max)
                .execute(&mut *tx)
                .await
                .map_err(|e| db(ctx(), e))?;
            }
        }
        if recorded.as_deref() != Some(step.fingerprint.as_str()) {
            sqlx::query(&format!(
                "INSERT INTO {book}.steps (step, fingerprint) VALUES ($1, $2)
                 ON CONFLICT (step) DO UPDATE SET fingerprint = EXCLUDED.fingerprint",
                book = crate::namespace::book_schema()
            ))
            .bind(&step.name)
            .bind(&step.fingerprint)
            .execute(&mut *tx)
            .await
            .map_err(|e| db(ctx(), e))?;
        }
        let pending: i64 =
            sqlx::query_scalar(&format!("SELECT count(*) FROM {keys} WHERE pending"))
                .fetch_one(&mut *tx)
                .await
                .map_err(|e| db(ctx(), e))?;
        tx.commit().await.map_err(|e| db(ctx(), e))?;
        // Only a capture that saw changes can have moved a watermark past a tombstone. Pruned
        // after the commit, so that of two readers capturing at once, the one that commits
        // last sees both watermarks moved (inside its transaction each saw the other's old one,
        // and the tombstones both had seen were left for a later run).
        if !changed_inputs.is_empty() {
            let mut conn = self.pool.acquire().await.map_err(|e| db(ctx(), e))?;
            for table in &changed_inputs {
                self.prune_tombstones(&mut conn, table).await?;
            }
        }
        Ok(Capture {
            pending: pending as u64,
            full,
        })
    }

    pub(super) async fn pending_page(
        &self,
        step: &StepDef,
        after: Option<&Key>,
        limit: usize,
    ) -> Result<Vec<Key>, StoreError> {
        self.page_of_keys(
            &keys_table(&step.name),
            &step.key,
            "pending",
            after,
            limit,
            &format!("listing pending keys of step `{}`", step.name),
        )
        .await
    }

    /// The keys a run would capture now, as a `cand(k0.., deleted)` CTE with its binds, and
    /// whether the fingerprint changed (every key).
    async fn plan_candidates(
        &self,
        step: &StepDef,
    ) -> Result<(String, Vec<i64>, bool), StoreError> {
        let keys = keys_table(&step.name);
        let width = step.key.len();
        let full = self.recorded_fingerprint(&step.name).await?.as_deref()
            != Some(step.fingerprint.as_str());
        let kn: Vec<String> = (0..width).map(|i| format!("k{i}")).collect();
        let mut parts = Vec::new();
        let mut binds = Vec::new();
        for input in &step.inputs {
            let meta = meta_table(&input.table);
            let wm = if full {
                -1
            } else {
                self.watermark(&step.name, &input.table).await?
            };
            if input.covers_key {
                let sel = key_projection(step, input)
                    .iter()
                    .enumerate()
                    .map(|(i, c)| format!("m.{} AS k{i}", quote_ident(c)))
                    .collect::<Vec<_>>()
                    .join(", ");
                binds.push(wm);
                let filter = if full {
                    "m.delete_ts IS NULL".to_string()
                } else {
                    format!("m.seq > ${}", binds.len())
                };
                parts.push(format!("SELECT {sel}, m.delete_ts IS NOT NULL AS deleted FROM {meta} AS m WHERE {filter}"));
            } else if !full {
                binds.push(wm);
                let p = binds.len();
                if input.join.is_empty() {
                    parts.push(format!(
                        "SELECT {}, false FROM {keys} AS t WHERE EXISTS (SELECT 1 FROM {meta} WHERE seq > ${p})",
                        column_list(&step.key, Some("t"))
                    ));
                } else {
                    let key_cols: Vec<String> = input.join.iter().map(|(k, _)| k.clone()).collect();
                    let sel = input
                        .join
                        .iter()
                        .enumerate()
                        .map(|(i, (_, c))| format!("m.{} AS k{i}", quote_ident(c)))
                        .collect::<Vec<_>>()
                        .join(", ");
                    parts.push(format!(
                        "SELECT {}, false FROM {keys} AS t JOIN (SELECT DISTINCT {sel} FROM {meta} AS m WHERE m.seq > ${p}) AS c ON {}",
                        column_list(&step.key, Some("t")),
                        join_on("t", &key_cols, "c")
                    ));
                }
            }
        }
        if full {
            parts.push(format!(
                "SELECT {}, false FROM {keys} AS t",
                column_list(&step.key, Some("t"))
            ));
        } else {
            parts.push(format!(
                "SELECT {}, false FROM {keys} AS t WHERE t.pending AND t.is_success IS DISTINCT FROM false",
                column_list(&step.key, Some("t"))
            ));
        }
        let union = parts
            .iter()
            .map(|p| format!("({p})"))
            .collect::<Vec<_>>()
            .join(" UNION ALL ");
        let cte = format!(
            "WITH cand AS (
                SELECT {kl}, bool_and(deleted) AS deleted FROM ({union}) AS x({kl}, deleted) GROUP BY {kl}
             )",
            kl = kn.join(", "),
        );
        Ok((cte, binds, full))
    }

    pub(super) async fn plan_step(&self, step: &StepDef) -> Result<PlanCounts, StoreError> {
        let keys = keys_table(&step.name);
        let ctx = || format!("planning step `{}`", step.name);
        let failed_due: i64 = sqlx::query_scalar(&format!(
            "SELECT count(*) FROM {keys} WHERE pending AND is_success = false"
        ))
        .fetch_one(&self.pool)
        .await
        .map_err(|e| db(ctx(), e))?;
        let (cte, binds, full) = self.plan_candidates(step).await?;

        let sql = format!(
            "{cte}
             SELECT count(*) FILTER (WHERE t.{k0} IS NULL AND NOT c.deleted),
                    count(*) FILTER (WHERE t.{k0} IS NOT NULL AND NOT c.deleted),
                    count(*) FILTER (WHERE c.deleted AND t.{k0} IS NOT NULL)
               FROM cand AS c LEFT JOIN {keys} AS t ON {on}
              WHERE NOT coalesce(t.pending AND t.is_success = false, false)",
            k0 = quote_ident(&step.key[0]),
            on = join_on("t", &step.key, "c"),
        );
        let mut q = sqlx::query_as::<_, (i64, i64, i64)>(&sql);
        for b in binds {
            q = q.bind(b);
        }
        let (new, changed, deleted) = q.fetch_one(&self.pool).await.map_err(|e| db(ctx(), e))?;
        Ok(PlanCounts {
            new: new as u64,
            changed: changed as u64,
            deleted: deleted as u64,
            failed_due: failed_due as u64,
            all_keys: full,
        })
    }

    pub(super) async fn plan_step_keys(
        &self,
        step: &StepDef,
        limit: usize,
    ) -> Result<Vec<Key>, StoreError> {
        let keys = keys_table(&step.name);
        let ctx = || format!("listing the keys step `{}` would process", step.name);
        let (cte, binds, _) = self.plan_candidates(step).await?;
        let width = step.key.len();
        let kn: Vec<String> = (0..width).map(|i| format!("k{i}")).collect();
        let sql = format!(
            "{cte}
             SELECT {kl} FROM (
                 SELECT {ckl} FROM cand AS c WHERE NOT c.deleted
                 UNION
                 SELECT {tkl} FROM {keys} AS t WHERE t.pending AND t.is_success = false
             ) AS w({kl})
             ORDER BY {kl} LIMIT ${n}",
            kl = kn.join(", "),
            ckl = kn
                .iter()
                .map(|k| format!("c.{k}"))
                .collect::<Vec<_>>()
                .join(", "),
            tkl = column_list(&step.key, Some("t")),
            n = binds.len() + 1,
        );
        let mut q = sqlx::query(&sql);
        for b in &binds {
            q = q.bind(*b);
        }
        let rows = q
            .bind(limit as i64)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| db(ctx(), e))?;
        rows.iter()
            .map(|r| key_of(r, width))
            .collect::<Result<_, _>>()
            .map_err(|e| db(ctx(), e))
    }
}

/// The newest change number (`seq`) of each of a step's inputs, in the inputs' order (0 for an
/// empty table), in one query.
async fn newest_changes(
    tx: &mut sqlx::PgConnection,
    step: &StepDef,
) -> Result<Vec<i64>, sqlx::Error> {
    if step.inputs.is_empty() {
        return Ok(Vec::new());
    }
    let sql = step
        .inputs
        .iter()
        .enumerate()
        .map(|(i, input)| {
            format!(
                "SELECT {i}::int AS i, coalesce(max(seq), 0) AS newest FROM {}",
                meta_table(&input.table)
            )
        })
        .collect::<Vec<_>>()
        .join(" UNION ALL ");
    let mut rows: Vec<(i32, i64)> = sqlx::query_as(&sql).fetch_all(tx).await?;
    rows.sort_unstable();
    Ok(rows.into_iter().map(|(_, newest)| newest).collect())
}
