//! `etl plan` for a transform: how many keys a run would process and delete, and what
//! processing them would cost, as the step estimates it on the keys themselves (texts to embed,
//! how many of them the cache holds). Reads only; nothing is captured or written. A step that
//! says it produces nothing from its keys is not asked: processing them costs nothing to
//! estimate (a run settles them unread, or, while an output table holds rows, runs batches
//! that only delete).

use crate::report::StepReport;
use crate::step::{StepContext, StepError, StepImpl};
use crate::StepDef;

use super::Runner;

/// The most keys a plan estimates the cost of; beyond, its figures are a lower bound (and say
/// so with the counter `estimate_keys_capped`).
const MAX_ESTIMATED_KEYS: usize = 200_000;

impl Runner {
    pub(super) async fn plan_transform(
        &self,
        step: &StepDef,
        ctx: &StepContext,
        report: &mut StepReport,
    ) -> Result<(), StepError> {
        let StepImpl::Transform(transform) = &step.implementation else {
            unreachable!("plan_transform is called for transforms")
        };
        let plan = self.store.plan(step).await?;
        let work = plan.new + plan.changed + plan.failed_due;
        report.plan = Some(plan);
        if work == 0 {
            return Ok(());
        }
        if transform.produces_nothing(ctx).await? {
            ctx.counters.add(super::PLAN_PRODUCES_NOTHING, 1);
            return Ok(());
        }
        let keys = self.store.plan_keys(step, MAX_ESTIMATED_KEYS).await?;
        if keys.len() >= MAX_ESTIMATED_KEYS {
            ctx.counters.add("estimate_keys_capped", 1);
        }
        for chunk in keys.chunks(step.batch_size.max(1)) {
            let batch = self.store.read_inputs(step, chunk).await?;
            for (name, n) in transform.estimate(ctx, batch).await? {
                ctx.counters.add(&name, n);
            }
        }
        Ok(())
    }
}
