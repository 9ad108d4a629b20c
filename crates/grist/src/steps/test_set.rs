//! `uses = "grist.test_set"`: the Test Set doc's golden Q&A table (`Gds` by default) into
//! `eval_gds`. Rows with a blank question or a blank answer are skipped, as in Vedana; other
//! blank cells are NULL (Vedana writes `""`).

use async_trait::async_trait;

use crate::GristClient;
use etl_core::step::{OutputRole, SnapshotSink};
use etl_core::{Row, StepContext, StepError, Value};

use super::connection::GristRead;

const COLUMNS: [&str; 5] = [
    "gds_question",
    "gds_answer",
    "question_scenario",
    "question_comment",
    "question_context",
];

pub struct TestSetExtract {
    pub client: GristClient,
    pub doc: String,
    pub table: String,
}

#[async_trait]
impl GristRead for TestSetExtract {
    fn client(&self) -> &GristClient {
        &self.client
    }

    fn docs(&self) -> Vec<String> {
        vec![self.doc.clone()]
    }

    fn outputs(&self) -> Vec<OutputRole> {
        vec![OutputRole {
            name: "questions",
            key: &["gds_question"],
            columns: &COLUMNS,
        }]
    }

    async fn check(&self) -> Result<(), StepError> {
        self.client.columns(&self.doc, &self.table).await?;
        Ok(())
    }

    async fn read_snapshot(
        &self,
        client: &GristClient,
        ctx: &StepContext,
        out: &mut dyn SnapshotSink,
    ) -> Result<serde_json::Value, StepError> {
        let columns = client.columns(&self.doc, &self.table).await?;
        let mut csv = client.csv(&self.doc, &self.table).await?;
        let headers = csv.column_ids(&columns).await?;
        let positions: Vec<Option<usize>> = COLUMNS
            .iter()
            .map(|c| headers.iter().position(|h| h == c))
            .collect();
        if positions[0].is_none() {
            return Err(StepError::fatal(format!(
                "table `{}` of the Test Set doc `{}` has no gds_question column",
                self.table, self.doc
            )));
        }
        while let Some(batch) = csv.next_batch().await? {
            let mut rows = Vec::with_capacity(batch.len());
            for record in batch {
                let mut row = Row::new();
                for (name, at) in COLUMNS.iter().zip(&positions) {
                    let cell = at.and_then(|i| record.get(i)).unwrap_or("");
                    row.set(
                        *name,
                        if cell.trim().is_empty() {
                            Value::Null
                        } else {
                            Value::Text(cell.to_string())
                        },
                    );
                }
                let given = |c: &str| row.get(c).is_some_and(|v| !v.is_null());
                if given("gds_question") && given("gds_answer") {
                    rows.push(row);
                }
            }
            out.write(ctx.output(0)?, rows).await?;
        }
        Ok(serde_json::Value::Null)
    }
}
