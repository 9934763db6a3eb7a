//! The per-run report: printed (human or JSON) and kept in the `runs` table.

use serde::Serialize;

use super::bulk::BulkReport;
use super::reconcile::ReconcileReport;

/// Outcomes for one kind of record.
#[derive(Debug, Default, Serialize)]
pub struct KindReport {
    pub updated: u64,
    pub unchanged: u64,
    pub not_found: u64,
    pub ambiguous: u64,
    pub failed: u64,
    /// Records that left the export, their departure handled (see `departures`).
    pub departed: u64,
    /// The first failures and ambiguities, with their reasons.
    pub problems: Vec<Problem>,
}

#[derive(Debug, Serialize)]
pub struct Problem {
    pub record: String,
    pub outcome: &'static str,
    pub reason: String,
}

/// Problems listed per kind (the rest are counted, and kept in records.last_error).
pub const PROBLEMS_SHOWN: usize = 20;

impl KindReport {
    /// Adds the outcomes of the departed records' handling (kept apart until the records in
    /// the export were counted, which `failed` departures are not).
    pub fn add_departures(&mut self, departed: KindReport) {
        self.departed += departed.departed;
        self.failed += departed.failed;
        for p in departed.problems {
            self.problem(&p.record, p.outcome, p.reason);
        }
    }

    pub fn problem(&mut self, record: &str, outcome: &'static str, reason: String) {
        if self.problems.len() < PROBLEMS_SHOWN {
            self.problems.push(Problem {
                record: record.to_string(),
                outcome,
                reason,
            });
        }
    }
}

#[derive(Debug, Default, Serialize)]
pub struct PushReport {
    pub companies: KindReport,
    pub users: KindReport,
    pub attributes_created: Vec<String>,
    pub api_calls: u64,
    pub rate_limited: u64,
    pub retries: u64,
    pub duration_secs: f64,
    pub dry_run: bool,
    pub warnings: Vec<String>,
    /// Present when the run reconciled (`reconcile`, `run --reconcile`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reconcile: Option<ReconcileReport>,
    /// Present when the run used (or meant to use) Intercom's bulk updates.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bulk: Option<BulkReport>,
}

impl PushReport {
    /// 0 when every record succeeded (not found / ambiguous are reported, not failures),
    /// 1 when some failed or a reconcile could not compare every record.
    pub fn exit_code(&self) -> u8 {
        let incomplete = self.reconcile.as_ref().is_some_and(|r| !r.complete);
        if self.companies.failed + self.users.failed > 0 || incomplete {
            1
        } else {
            0
        }
    }

    pub fn writes(&self) -> u64 {
        self.companies.updated + self.users.updated
    }

    /// The report as text; `sent`: whether the push sent (else only the reconcile is shown).
    pub fn render_human(&self, sent: bool) -> String {
        let mut out = String::new();
        if let Some(reconcile) = &self.reconcile {
            out.push_str(&reconcile.render_human());
        }
        let pushed = [("companies", &self.companies), ("users", &self.users)];
        for (label, k) in pushed.into_iter().filter(|_| sent) {
            out.push_str(&format!(
                "{label:<10} updated {:>7}  unchanged {:>7}  not_found {:>5}  ambiguous {:>5}  failed {:>5}",
                k.updated, k.unchanged, k.not_found, k.ambiguous, k.failed
            ));
            if k.departed > 0 {
                out.push_str(&format!("  departed {:>5}", k.departed));
            }
            out.push('\n');
            for p in &k.problems {
                out.push_str(&format!("  {} {}: {}\n", p.outcome, p.record, p.reason));
            }
        }
        if !self.attributes_created.is_empty() {
            out.push_str(&format!(
                "created data attributes: {}\n",
                self.attributes_created.join(", ")
            ));
        }
        if let Some(bulk) = self.bulk.as_ref().filter(|b| !b.fell_back) {
            out.push_str(&bulk.render_human());
        }
        out.push_str(&format!(
            "API calls {} (429s {}, retries {}) in {:.1} s\n",
            self.api_calls, self.rate_limited, self.retries, self.duration_secs
        ));
        out
    }
}
