//! A model's deployment: its champion and, while one is being tried, a challenger that gets a
//! copy of the traffic (shadow), a growing share of it (canary) or a fixed share (A/B).
//!
//! Routing is lock-free: a request's side is chosen from its routing key's hash (so a caller
//! with a key stays on one side) or, without a key, by a running count that gives the
//! challenger exactly its share of every run of requests, evenly spread. Each side counts its requests,
//! errors and model latency from the moment the deployment began; [`Deployment::review`]
//! compares the two against the rollout policy and says whether to hold, move the canary to its
//! next step, promote the challenger, or roll it back. The review decides; the server applies
//! the decision (swapping deployments, moving aliases), so this module does no IO.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::feedback::Quality;
use super::model::ServedModel;
use super::policy::ModelPolicy;

/// How a challenger takes part in the traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    /// It answers a copy of every request; only the champion's answer is returned.
    Shadow,
    /// It answers a share of the requests that grows step by step.
    Canary,
    /// It answers a fixed share of the requests.
    Ab,
}

impl std::fmt::Display for Strategy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Strategy::Shadow => "shadow",
            Strategy::Canary => "canary",
            Strategy::Ab => "A/B split",
        })
    }
}

/// Which side answered a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arm {
    Champion,
    Challenger,
}

impl Arm {
    pub fn label(self) -> &'static str {
        match self {
            Arm::Champion => "champion",
            Arm::Challenger => "challenger",
        }
    }
}

/// Where a request goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// To this side alone.
    To(Arm),
    /// To the champion, with a copy to the challenger.
    Mirrored,
}

/// Quarter-octave latency buckets from 1 us: bucket `i` ends at `2^(i/4)` us, about 9% apart,
/// up to about 16 s.
const LATENCY_BUCKETS: usize = 96;

/// A latency distribution kept in atomics, so recording takes no lock.
pub struct Latencies {
    buckets: [AtomicU64; LATENCY_BUCKETS],
}

impl Default for Latencies {
    fn default() -> Latencies {
        Latencies {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

fn bucket_end(index: usize) -> Duration {
    Duration::from_secs_f64(2f64.powf(index as f64 / 4.0) * 1e-6)
}

impl Latencies {
    pub fn record(&self, took: Duration) {
        let micros = took.as_secs_f64() * 1e6;
        let index = if micros <= 1.0 {
            0
        } else {
            ((micros.log2() * 4.0).ceil() as usize).min(LATENCY_BUCKETS - 1)
        };
        self.buckets[index].fetch_add(1, Ordering::Relaxed);
    }

    /// Samples recorded.
    pub fn count(&self) -> u64 {
        self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).sum()
    }

    /// The `q` quantile (the end of the bucket it falls in), or zero with no samples.
    pub fn quantile(&self, q: f64) -> Duration {
        let counts: Vec<u64> = self
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return Duration::ZERO;
        }
        let rank = ((total as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (index, count) in counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return bucket_end(index);
            }
        }
        bucket_end(LATENCY_BUCKETS - 1)
    }
}

/// One side's counts since the deployment began.
#[derive(Default)]
pub struct ArmStats {
    requests: AtomicU64,
    errors: AtomicU64,
    /// Requests sent without a credential that the other side answered and this one refused
    /// (a row its checks do not take): not its errors, but not healthy answers either.
    refused: AtomicU64,
    /// Time spent in the model, per request.
    latency: Latencies,
}

/// A copy of one side's counts.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct ArmSnapshot {
    pub requests: u64,
    pub errors: u64,
    pub refused: u64,
    pub error_rate: f64,
    #[serde(serialize_with = "micros")]
    pub p50: Duration,
    #[serde(serialize_with = "micros")]
    pub p95: Duration,
}

fn micros<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64() * 1e6)
}

impl ArmStats {
    /// Counts one request: whether the model answered it, and how long the model took.
    pub fn record(&self, ok: bool, took: Duration) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        if !ok {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
        self.latency.record(took);
    }

    pub fn snapshot(&self) -> ArmSnapshot {
        let requests = self.requests.load(Ordering::Relaxed);
        let errors = self.errors.load(Ordering::Relaxed);
        ArmSnapshot {
            requests,
            errors,
            refused: self.refused.load(Ordering::Relaxed),
            error_rate: if requests == 0 {
                0.0
            } else {
                errors as f64 / requests as f64
            },
            p50: self.latency.quantile(0.5),
            p95: self.latency.quantile(0.95),
        }
    }
}

/// How the challenger's answers to mirrored requests compare with the champion's.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct ShadowComparison {
    /// Requests mirrored to the challenger.
    pub mirrored: u64,
    /// Requests not mirrored because the challenger was still busy with earlier copies.
    pub dropped: u64,
    /// Rows both answered.
    pub rows: u64,
    /// Rows where both predicted the same label (classifiers).
    pub agreed: u64,
    /// `agreed / rows`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agreement: Option<f64>,
    /// Mean and largest absolute difference of their scores (probabilities or predictions).
    pub mean_score_delta: f64,
    pub max_score_delta: f64,
    score_delta_sum: f64,
    score_values: u64,
}

/// What both sides answered for one mirrored request.
pub struct Compared {
    pub rows: u64,
    pub agreed: Option<u64>,
    /// Absolute score differences.
    pub deltas: Vec<f64>,
}

impl ShadowComparison {
    fn add(&mut self, compared: &Compared) {
        self.mirrored += 1;
        self.rows += compared.rows;
        if let Some(agreed) = compared.agreed {
            self.agreed += agreed;
            self.agreement = Some(self.agreed as f64 / self.rows.max(1) as f64);
        }
        for &delta in &compared.deltas {
            self.score_delta_sum += delta;
            self.score_values += 1;
            self.max_score_delta = self.max_score_delta.max(delta);
        }
        if self.score_values > 0 {
            self.mean_score_delta = self.score_delta_sum / self.score_values as f64;
        }
    }
}

/// The version being tried beside the champion.
pub struct Challenger {
    pub model: Arc<ServedModel>,
    pub strategy: Strategy,
    /// How it came to be deployed, for people.
    pub why: String,
    /// The canary's steps (percent of traffic), the first being where it started.
    steps: Vec<u8>,
    step: AtomicUsize,
    /// Traffic share in hundredths of a percent.
    share: AtomicU32,
    /// When the current step began, and the challenger's requests then.
    step_began: Mutex<(Instant, u64)>,
    /// When it was deployed: a canary is promoted only once the policy's minimum duration has
    /// passed since, however fast its requests came.
    deployed: Instant,
    /// Set once a hold of its progress has been reported, so the event is emitted once.
    hold_reported: AtomicBool,
    pub stats: ArmStats,
    shadow: Mutex<ShadowComparison>,
    dropped: AtomicU64,
}

/// What a review decided.
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    Hold,
    /// The canary would move on but may not, for this reason (reported once).
    Held {
        reason: String,
    },
    /// Move the canary to its next step.
    Step {
        percent: u8,
        reason: String,
    },
    Promote {
        reason: String,
    },
    Rollback {
        reason: String,
    },
}

/// Live quality of both sides, when feedback has arrived for them.
pub struct QualityPair {
    pub champion: Quality,
    pub challenger: Quality,
}

/// A model's champion and, maybe, its challenger; replaced whole when either changes.
pub struct Deployment {
    pub name: String,
    pub champion: Arc<ServedModel>,
    pub challenger: Option<Challenger>,
    pub policy: Arc<ModelPolicy>,
    pub champion_stats: ArmStats,
    pub began: Instant,
    /// Requests without a routing key, for the exact split.
    unkeyed: AtomicU64,
    /// Set once a promotion or rollback has been decided, so it is applied once.
    concluded: AtomicBool,
}

/// A stable hash (64-bit FNV-1a, then MurmurHash3's finaliser so that keys differing in one
/// character spread over every bit), so a routing key lands on the same side in every process.
fn key_hash(text: &str) -> u64 {
    let mut hash = text.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xff51_afd7_ed55_8ccd);
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    hash ^ (hash >> 33)
}

/// Where a hash falls among 10,000 slots (hundredths of a percent).
fn slot(hash: u64) -> u32 {
    (((hash >> 32) * 10_000) >> 32) as u32
}

impl Deployment {
    /// The champion alone.
    pub fn champion_only(champion: Arc<ServedModel>, policy: Arc<ModelPolicy>) -> Deployment {
        Deployment {
            name: champion.name.clone(),
            champion,
            challenger: None,
            policy,
            champion_stats: ArmStats::default(),
            began: Instant::now(),
            unkeyed: AtomicU64::new(0),
            concluded: AtomicBool::new(false),
        }
    }

    /// The champion with `challenger` deployed by `strategy`; a canary starts at `percent` (or
    /// the policy's first step) and ramps through the policy's steps above it.
    pub fn with_challenger(
        champion: Arc<ServedModel>,
        challenger: Arc<ServedModel>,
        strategy: Strategy,
        percent: Option<u8>,
        why: String,
        policy: Arc<ModelPolicy>,
    ) -> Deployment {
        let rollout = &policy.rollout;
        let steps = match strategy {
            Strategy::Shadow => vec![0],
            Strategy::Ab => vec![percent.unwrap_or(rollout.ab_percent).clamp(1, 99)],
            Strategy::Canary => {
                let start = percent.unwrap_or(rollout.canary_steps[0]).clamp(1, 100);
                std::iter::once(start)
                    .chain(rollout.canary_steps.iter().copied().filter(|&p| p > start))
                    .collect()
            }
        };
        let mut deployment = Deployment::champion_only(champion, policy);
        deployment.challenger = Some(Challenger {
            model: challenger,
            strategy,
            why,
            share: AtomicU32::new(u32::from(steps[0]) * 100),
            steps,
            step: AtomicUsize::new(0),
            step_began: Mutex::new((Instant::now(), 0)),
            deployed: Instant::now(),
            hold_reported: AtomicBool::new(false),
            stats: ArmStats::default(),
            shadow: Mutex::new(ShadowComparison::default()),
            dropped: AtomicU64::new(0),
        });
        deployment
    }

    /// Chooses the side of a request.
    pub fn route(&self, key: Option<&str>) -> Route {
        let Some(challenger) = &self.challenger else {
            return Route::To(Arm::Champion);
        };
        if self.concluded.load(Ordering::Relaxed) {
            return Route::To(Arm::Champion);
        }
        if challenger.strategy == Strategy::Shadow {
            return Route::Mirrored;
        }
        let share = u64::from(challenger.share.load(Ordering::Relaxed));
        let to_challenger = match key {
            Some(key) => u64::from(slot(key_hash(key))) < share,
            // Request k goes to the challenger when the running total of its share crosses
            // a whole request: exactly floor(k * share) of the first k requests, evenly spaced.
            None => {
                let k = self.unkeyed.fetch_add(1, Ordering::Relaxed);
                (k + 1) * share / 10_000 != k * share / 10_000
            }
        };
        if to_challenger {
            Route::To(Arm::Challenger)
        } else {
            Route::To(Arm::Champion)
        }
    }

    /// The side serving `version`, if either does.
    pub fn arm_of(&self, version: &str) -> Option<(Arm, &Arc<ServedModel>)> {
        if self.champion.version == version {
            return Some((Arm::Champion, &self.champion));
        }
        self.challenger
            .as_ref()
            .filter(|c| c.model.version == version)
            .map(|c| (Arm::Challenger, &c.model))
    }

    pub fn model(&self, arm: Arm) -> &Arc<ServedModel> {
        match (arm, &self.challenger) {
            (Arm::Challenger, Some(challenger)) => &challenger.model,
            _ => &self.champion,
        }
    }

    /// Counts a request answered (or failed) by `arm`.
    pub fn record(&self, arm: Arm, ok: bool, model_time: Duration) {
        match (arm, &self.challenger) {
            (Arm::Challenger, Some(challenger)) => challenger.stats.record(ok, model_time),
            _ => self.champion_stats.record(ok, model_time),
        }
    }

    /// Counts a request without a credential that the champion answered and the challenger
    /// refused.
    pub fn record_refusal(&self) {
        if let Some(challenger) = &self.challenger {
            challenger.stats.refused.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts a mirrored request's comparison.
    pub fn record_shadow(&self, compared: &Compared) {
        if let Some(challenger) = &self.challenger {
            challenger
                .shadow
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .add(compared);
        }
    }

    /// Counts a request not mirrored because the challenger was busy.
    pub fn record_dropped_copy(&self) {
        if let Some(challenger) = &self.challenger {
            challenger.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The challenger's share of traffic now, in percent (0 for a shadow).
    pub fn challenger_percent(&self) -> Option<f64> {
        self.challenger
            .as_ref()
            .map(|c| f64::from(c.share.load(Ordering::Relaxed)) / 100.0)
    }

    /// Claims the right to apply a promotion or rollback: true for the first caller only.
    pub fn conclude(&self) -> bool {
        !self.concluded.swap(true, Ordering::AcqRel)
    }

    /// Compares the two sides against the policy. `quality` gives their live quality when
    /// feedback is known; it is asked for only when a verdict depends on it.
    pub fn review(&self, now: Instant, quality: &dyn Fn() -> Option<QualityPair>) -> Verdict {
        let Some(challenger) = &self.challenger else {
            return Verdict::Hold;
        };
        if self.concluded.load(Ordering::Relaxed) {
            return Verdict::Hold;
        }
        let policy = &self.policy;
        let ours = challenger.stats.snapshot();
        let theirs = self.champion_stats.snapshot();
        if policy.rollback.enabled
            && let Some(reason) = self.unhealthy(&ours, &theirs)
        {
            return Verdict::Rollback { reason };
        }
        if challenger.strategy != Strategy::Canary {
            return Verdict::Hold;
        }
        let step = challenger.step.load(Ordering::Relaxed);
        let (began, requests_then) = *challenger
            .step_began
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let rollout = &policy.rollout;
        let step_done = ours.requests.saturating_sub(requests_then) >= rollout.step_requests
            && now.duration_since(began) >= rollout.step_duration;
        // A step ends healthy only once the guard could judge it.
        if !step_done || ours.requests < policy.rollback.min_requests {
            return Verdict::Hold;
        }
        if policy.rollback.enabled
            && let Some(pair) = quality()
            && let Some(reason) = self.worse_quality(&pair)
        {
            return Verdict::Rollback { reason };
        }
        // Live inputs unlike the challenger's own training data: more traffic on it would be
        // a guess, whatever its error rate says.
        if let Some(reason) = drifted(&challenger.model) {
            return Verdict::Held { reason };
        }
        // Rows it refuses that the champion takes, from callers without a credential: they
        // cannot roll it back (anyone could send them), but it does not go further while
        // they are more than the error margin allows.
        let judged = ours.requests + ours.refused;
        if ours.refused > 0 && ours.refused as f64 / judged as f64 > policy.rollback.error_margin {
            return Verdict::Held {
                reason: format!(
                    "v{} refused {} of {judged} requests the champion answered ({:.1}%, above the {:.1}% margin)",
                    challenger.model.version,
                    ours.refused,
                    ours.refused as f64 * 100.0 / judged as f64,
                    policy.rollback.error_margin * 100.0
                ),
            };
        }
        let percent = challenger.steps[step];
        match challenger.steps.get(step + 1) {
            Some(&next) => Verdict::Step {
                percent: next,
                reason: format!(
                    "canary step at {percent}% healthy over {} requests (error rate {:.2}% vs {:.2}%, median latency {} vs {})",
                    ours.requests - requests_then,
                    ours.error_rate * 100.0,
                    theirs.error_rate * 100.0,
                    show(ours.p50),
                    show(theirs.p50),
                ),
            },
            None if rollout.auto_promote
                && now.duration_since(challenger.deployed) < rollout.min_duration =>
            {
                Verdict::Hold
            }
            None if rollout.auto_promote => Verdict::Promote {
                reason: format!(
                    "canary healthy through {} over {} requests (error rate {:.2}% vs the champion's {:.2}%, median latency {} vs {})",
                    challenger
                        .steps
                        .iter()
                        .map(|p| format!("{p}%"))
                        .collect::<Vec<_>>()
                        .join(", "),
                    ours.requests,
                    ours.error_rate * 100.0,
                    theirs.error_rate * 100.0,
                    show(ours.p50),
                    show(theirs.p50),
                ),
            },
            None => Verdict::Hold,
        }
    }

    /// Reviews quality alone (feedback just arrived).
    pub fn review_quality(&self, pair: &QualityPair) -> Verdict {
        if self.challenger.is_none()
            || !self.policy.rollback.enabled
            || self.concluded.load(Ordering::Relaxed)
        {
            return Verdict::Hold;
        }
        match self.worse_quality(pair) {
            Some(reason) => Verdict::Rollback { reason },
            None => Verdict::Hold,
        }
    }

    /// Claims the report of a hold: true for the first caller of a challenger's deployment.
    pub fn report_hold(&self) -> bool {
        self.challenger
            .as_ref()
            .is_some_and(|c| !c.hold_reported.swap(true, Ordering::AcqRel))
    }

    /// Moves the canary to its next step (when it still is at `from`'s step), which begins
    /// `now`.
    pub fn advance(&self, percent: u8, now: Instant) -> bool {
        let Some(challenger) = &self.challenger else {
            return false;
        };
        let step = challenger.step.load(Ordering::Relaxed);
        if challenger.steps.get(step + 1) != Some(&percent)
            || challenger
                .step
                .compare_exchange(step, step + 1, Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
        {
            return false;
        }
        challenger
            .share
            .store(u32::from(percent) * 100, Ordering::Relaxed);
        *challenger
            .step_began
            .lock()
            .unwrap_or_else(|e| e.into_inner()) =
            (now, challenger.stats.requests.load(Ordering::Relaxed));
        true
    }

    /// Why the challenger's errors or latency are worse than the policy allows, if they are.
    fn unhealthy(&self, ours: &ArmSnapshot, theirs: &ArmSnapshot) -> Option<String> {
        let rollback = &self.policy.rollback;
        if ours.requests < rollback.min_requests {
            return None;
        }
        if ours.error_rate > theirs.error_rate + rollback.error_margin {
            return Some(format!(
                "error rate {:.1}% over {} requests, the champion's {:.1}% (margin {:.1} points)",
                ours.error_rate * 100.0,
                ours.requests,
                theirs.error_rate * 100.0,
                rollback.error_margin * 100.0
            ));
        }
        // Latency is compared only when the champion has enough requests of its own.
        if theirs.requests >= rollback.min_requests.min(50) {
            // The median, not a tail quantile: a model that is slower is slower on most
            // requests, while the tail of a few dozen requests is mostly the scheduler's noise.
            let allowed = theirs
                .p50
                .mul_f64(rollback.latency_ratio)
                .max(theirs.p50 + rollback.latency_floor);
            if ours.p50 > allowed {
                return Some(format!(
                    "median latency {} over {} requests, the champion's {} (allowed up to {})",
                    show(ours.p50),
                    ours.requests,
                    show(theirs.p50),
                    show(allowed)
                ));
            }
        }
        None
    }

    fn worse_quality(&self, pair: &QualityPair) -> Option<String> {
        let rollback = &self.policy.rollback;
        let (ours, theirs) = (&pair.challenger, &pair.champion);
        if ours.rows < rollback.min_feedback || theirs.rows < rollback.min_feedback {
            return None;
        }
        if let (Some(a), Some(b)) = (ours.accuracy, theirs.accuracy)
            && b - a > rollback.quality_margin
        {
            return Some(format!(
                "live accuracy {a:.3} over {} rows with feedback, the champion's {b:.3} (margin {})",
                ours.rows, rollback.quality_margin
            ));
        }
        if let (Some(a), Some(b)) = (ours.rmse, theirs.rmse)
            && a > b * (1.0 + rollback.quality_margin)
        {
            return Some(format!(
                "live RMSE {a:.4} over {} rows with feedback, the champion's {b:.4} (margin {:.0}%)",
                ours.rows,
                rollback.quality_margin * 100.0
            ));
        }
        None
    }

    /// What the deployment looks like now, for the status endpoint.
    pub fn status(&self) -> serde_json::Value {
        let challenger = self.challenger.as_ref().map(|c| {
            let shadow = c.shadow.lock().unwrap_or_else(|e| e.into_inner()).clone();
            let mut value = serde_json::json!({
                "version": c.model.version,
                "source": c.model.source,
                "strategy": c.strategy,
                "why": c.why,
                "percent": f64::from(c.share.load(Ordering::Relaxed)) / 100.0,
                "stats": c.stats.snapshot(),
            });
            if c.strategy == Strategy::Canary {
                value["steps"] = serde_json::json!(c.steps);
                value["step"] = serde_json::json!(c.step.load(Ordering::Relaxed));
            }
            if c.strategy == Strategy::Shadow {
                let mut shadow = serde_json::to_value(&shadow).expect("plain data");
                shadow["dropped"] = serde_json::json!(c.dropped.load(Ordering::Relaxed));
                value["shadow"] = shadow;
            }
            value
        });
        serde_json::json!({
            "name": self.name,
            "champion": {
                "version": self.champion.version,
                "source": self.champion.source,
                "stats": self.champion_stats.snapshot(),
            },
            "challenger": challenger,
            "seconds": self.began.elapsed().as_secs_f64(),
        })
    }

    /// The shadow comparison so far (for the metrics).
    pub fn shadow_comparison(&self) -> Option<ShadowComparison> {
        let challenger = self.challenger.as_ref()?;
        if challenger.strategy != Strategy::Shadow {
            return None;
        }
        let mut comparison = challenger
            .shadow
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        comparison.dropped = challenger.dropped.load(Ordering::Relaxed);
        Some(comparison)
    }
}

/// Why a version's latest drift check holds its rollout, if it does.
fn drifted(model: &ServedModel) -> Option<String> {
    let report = model.monitor.last()?;
    match &report.result {
        super::monitor::DriftResult::Checked {
            drifted: true,
            drift_share,
            ..
        } => Some(format!(
            "v{}'s live inputs drifted from its training data ({:.0}% of features at the latest check)",
            model.version,
            drift_share * 100.0
        )),
        _ => None,
    }
}

/// A duration for people: `640us`, `3.2ms`, `1.5s`.
fn show(d: Duration) -> String {
    let micros = d.as_secs_f64() * 1e6;
    if micros < 1000.0 {
        format!("{micros:.0}us")
    } else if micros < 1e6 {
        format!("{:.1}ms", micros / 1e3)
    } else {
        format!("{:.2}s", micros / 1e6)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serve::policy::Policy;

    fn model(version: &str) -> Arc<ServedModel> {
        Arc::new(ServedModel::fixture("m", version))
    }

    fn policy(text: &str) -> Arc<ModelPolicy> {
        Arc::new(Policy::parse(text).unwrap().for_model("m").clone())
    }

    fn canary(text: &str, percent: Option<u8>) -> Deployment {
        Deployment::with_challenger(
            model("1"),
            model("2"),
            Strategy::Canary,
            percent,
            "test".into(),
            policy(text),
        )
    }

    fn share(deployment: &Deployment, requests: usize) -> usize {
        (0..requests)
            .filter(|_| deployment.route(None) == Route::To(Arm::Challenger))
            .count()
    }

    #[test]
    fn the_split_is_exact_without_keys_and_sticky_with_them() {
        let deployment = canary("", Some(10));
        assert_eq!(share(&deployment, 1000), 100);
        let ab = Deployment::with_challenger(
            model("1"),
            model("2"),
            Strategy::Ab,
            None,
            "test".into(),
            policy("[rollout]\nab_percent = 30"),
        );
        assert_eq!(share(&ab, 1000), 300);
        // A key always lands on the same side; many keys split about as configured.
        let keyed: Vec<Route> = (0..2000)
            .map(|i| ab.route(Some(&format!("user-{i}"))))
            .collect();
        for (i, route) in keyed.iter().enumerate() {
            assert_eq!(ab.route(Some(&format!("user-{i}"))), *route);
        }
        let challenger = keyed
            .iter()
            .filter(|r| **r == Route::To(Arm::Challenger))
            .count();
        assert!((500..700).contains(&challenger), "{challenger}");
        let shadow = Deployment::with_challenger(
            model("1"),
            model("2"),
            Strategy::Shadow,
            None,
            "test".into(),
            policy(""),
        );
        assert_eq!(shadow.route(Some("x")), Route::Mirrored);
        assert_eq!(
            Deployment::champion_only(model("1"), policy("")).route(None),
            Route::To(Arm::Champion)
        );
    }

    #[test]
    fn a_healthy_canary_ramps_through_its_steps_then_is_promoted() {
        let deployment = canary(
            "[rollout]\ncanary_steps = [10, 25, 50]\nstep_requests = 20\nstep_duration = \"2m\"\nmin_duration = \"10m\"\n[rollback]\nmin_requests = 20",
            Some(5),
        );
        let none = || None;
        let mut seen = Vec::new();
        // However fast its requests come, a step lasts its duration and the canary is not
        // promoted before its minimum duration: with the clock at the start, nothing moves.
        let start = Instant::now();
        let mut clock = start;
        for round in 0..4 {
            for _ in 0..200 {
                deployment.record(Arm::Champion, true, Duration::from_micros(100));
                deployment.record(Arm::Challenger, true, Duration::from_micros(110));
                match deployment.review(clock, &none) {
                    Verdict::Hold => {}
                    Verdict::Step { percent, .. } => {
                        assert!(deployment.advance(percent, clock));
                        seen.push(percent);
                    }
                    other => panic!("{other:?}"),
                }
            }
            // One step per two minutes, however many requests came in them.
            assert_eq!(seen.len(), round, "{seen:?} after round {round}");
            clock += Duration::from_secs(121);
        }
        assert_eq!(seen, vec![10, 25, 50]);
        // Ten minutes later it is.
        match deployment.review(start + Duration::from_secs(601), &none) {
            Verdict::Promote { reason } => {
                assert!(reason.contains("5%, 10%, 25%, 50%"), "{reason}");
                assert!(deployment.conclude());
                assert!(!deployment.conclude(), "a promotion is applied once");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(deployment.route(None), Route::To(Arm::Champion));
    }

    #[test]
    fn rows_only_the_challenger_refuses_hold_its_canary_without_rolling_it_back() {
        let deployment = canary(
            "[rollout]\ncanary_steps = [10, 50]\nstep_requests = 5\nstep_duration = \"0s\"\nmin_duration = \"0s\"\n[rollback]\nmin_requests = 5",
            None,
        );
        let none = || None;
        for _ in 0..20 {
            deployment.record(Arm::Champion, true, Duration::from_micros(100));
            deployment.record(Arm::Challenger, true, Duration::from_micros(100));
            deployment.record_refusal();
        }
        match deployment.review(Instant::now(), &none) {
            Verdict::Held { reason } => assert!(reason.contains("refused 20 of 40"), "{reason}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn drift_on_the_challengers_inputs_holds_its_rollout() {
        let deployment = canary(
            "[rollout]\ncanary_steps = [10, 50]\nstep_requests = 5\nstep_duration = \"0s\"\nmin_duration = \"0s\"\n[rollback]\nmin_requests = 5",
            None,
        );
        let challenger = deployment.challenger.as_ref().unwrap();
        challenger
            .model
            .monitor
            .finish_check(crate::serve::monitor::DriftReport {
                at: 0,
                rows: 100,
                result: crate::serve::monitor::DriftResult::Checked {
                    drifted: true,
                    drift_share: 0.5,
                    features: Vec::new(),
                },
            });
        for _ in 0..10 {
            deployment.record(Arm::Champion, true, Duration::from_micros(100));
            deployment.record(Arm::Challenger, true, Duration::from_micros(100));
        }
        match deployment.review(Instant::now(), &|| None) {
            Verdict::Held { reason } => assert!(reason.contains("drifted"), "{reason}"),
            other => panic!("{other:?}"),
        }
        assert!(deployment.report_hold());
        assert!(!deployment.report_hold(), "reported once");
    }

    #[test]
    fn errors_latency_and_quality_roll_a_challenger_back() {
        let none = || None;
        let errors = canary("[rollback]\nmin_requests = 50", None);
        for i in 0..60 {
            errors.record(Arm::Champion, true, Duration::from_micros(100));
            errors.record(Arm::Challenger, i % 10 != 0, Duration::from_micros(100));
        }
        match errors.review(Instant::now(), &none) {
            Verdict::Rollback { reason } => {
                assert!(
                    reason.starts_with("error rate 10.0% over 60 requests"),
                    "{reason}"
                )
            }
            other => panic!("{other:?}"),
        }

        let slow = canary("[rollback]\nmin_requests = 50", None);
        for _ in 0..60 {
            slow.record(Arm::Champion, true, Duration::from_micros(100));
            slow.record(Arm::Challenger, true, Duration::from_millis(5));
        }
        match slow.review(Instant::now(), &none) {
            Verdict::Rollback { reason } => assert!(reason.contains("median latency"), "{reason}"),
            other => panic!("{other:?}"),
        }
        // Twice as slow but within the absolute floor is not a reason.
        let noisy = canary("[rollback]\nmin_requests = 50", None);
        for _ in 0..60 {
            noisy.record(Arm::Champion, true, Duration::from_micros(20));
            noisy.record(Arm::Challenger, true, Duration::from_micros(90));
        }
        assert_eq!(noisy.review(Instant::now(), &none), Verdict::Hold);

        let quality = |champion: f64, challenger: f64| QualityPair {
            champion: Quality {
                rows: 100,
                accuracy: Some(champion),
                ..Quality::default()
            },
            challenger: Quality {
                rows: 100,
                accuracy: Some(challenger),
                ..Quality::default()
            },
        };
        let deployment = canary("", None);
        assert_eq!(
            deployment.review_quality(&quality(0.95, 0.93)),
            Verdict::Hold
        );
        assert!(matches!(
            deployment.review_quality(&quality(0.95, 0.80)),
            Verdict::Rollback { .. }
        ));
        let off = canary("[rollback]\nenabled = false", None);
        assert_eq!(off.review_quality(&quality(0.95, 0.5)), Verdict::Hold);
    }

    #[test]
    fn latency_quantiles_come_from_quarter_octave_buckets() {
        let latencies = Latencies::default();
        assert_eq!(latencies.quantile(0.5), Duration::ZERO);
        for micros in 1..=100 {
            latencies.record(Duration::from_micros(micros));
        }
        let p95 = latencies.quantile(0.95).as_secs_f64() * 1e6;
        assert!((95.0..=95.0 * 1.19).contains(&p95), "{p95}");
        assert_eq!(show(Duration::from_micros(640)), "640us");
        assert_eq!(show(Duration::from_micros(3200)), "3.2ms");
    }
}
