//! Deployment strategies end to end: versions trained and gated by real workflows, served by
//! the real `wflow serve` beside its registry, driven over HTTP. A canary ramps and is promoted;
//! an A/B split is exact and sticky per routing key; a shadow is compared with the champion and
//! rolled back when feedback shows it is worse; a canary that fails requests is rolled back at
//! once; drift of live inputs is found by the drift plugin; admin actions need the token; and a
//! promotion changes what is served without failing a request in flight.

use std::path::Path;

use wflow::store::Store;
use wflow::store::records::Actor;

use crate::serve::{Served, TOKEN, serve};
use crate::support::{Answer, get, http, post_json, repo, stderr, stdout, wflow};

const BEARER: &str = "Bearer s3cret-admin-token";

/// A project in a temporary directory: the breast-cancer data and a small workflow whose
/// trainer and gate configuration each run chooses.
struct Project {
    dir: tempfile::TempDir,
}

impl Project {
    fn new() -> Project {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("data")).unwrap();
        std::fs::copy(
            repo().join("workflows/data/breast_cancer.csv"),
            dir.path().join("data/breast_cancer.csv"),
        )
        .unwrap();
        Project { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Trains, evaluates, gates and registers a version of `bc`.
    fn train(&self, train: &str, gate: &str) {
        let workflow = format!(
            r#"
[workflow]
name = "bc"

[datasets.cancer]
path = "data/breast_cancer.csv"

[steps.split]
uses = "train-test-split"
inputs = {{ data = "cancer" }}
with = {{ test_fraction = 0.25, seed = 42, stratify = "malignant" }}

[steps.train]
uses = "logistic-regression"
inputs = {{ data = "split.train" }}
target = "malignant"
with = {train}

[steps.evaluate]
uses = "classification-metrics"
inputs = {{ model = "train.model", data = "split.test" }}

[steps.gate]
uses = "deployment-gate"
inputs = {{ candidate = "evaluate.evaluation" }}
with = {gate}

[steps.register]
uses = "register-model"
inputs = {{ model = "train.model", data = "split.train", evaluation = "evaluate.evaluation", decision = "gate.decision" }}
with = {{ name = "bc" }}
"#
        );
        std::fs::write(self.path().join("bc.toml"), workflow).unwrap();
        let run = wflow(self.path(), &["run", "bc.toml"]);
        assert!(run.status.success(), "{}{}", stdout(&run), stderr(&run));
    }

    /// v1 promoted, then v2 registered as the challenger by the gate's `decision`.
    fn champion_and_challenger(&self, challenger_train: &str, decision: &str) {
        self.train("{}", r#"{ no_champion = "promote" }"#);
        self.train(challenger_train, &format!("{{ no_champion = {decision} }}"));
    }

    fn serve(&self, policy: &str) -> Served {
        std::fs::write(self.path().join("policy.toml"), policy).unwrap();
        serve(
            self.path(),
            &[
                "--registry",
                "bc",
                "--policy",
                "policy.toml",
                "--watch",
                "100ms",
            ],
        )
    }

    /// The first `n` rows of the data, as the model's input.
    fn rows(&self, n: usize) -> Vec<Vec<f32>> {
        let store = self.store();
        let features = store.version("bc", 1).unwrap().features;
        drop(store);
        let table = wflow::table::csv::read(
            &self.path().join("data/breast_cancer.csv"),
            &Default::default(),
        )
        .unwrap();
        (0..n)
            .map(|row| {
                features
                    .iter()
                    .map(|f| table.column(f).unwrap().f64_at(row).unwrap() as f32)
                    .collect()
            })
            .collect()
    }

    fn labels(&self, n: usize) -> Vec<String> {
        let table = wflow::table::csv::read(
            &self.path().join("data/breast_cancer.csv"),
            &Default::default(),
        )
        .unwrap();
        (0..n)
            .map(|row| table.column("malignant").unwrap().text_at(row).unwrap())
            .collect()
    }

    fn store(&self) -> Store {
        Store::open(self.path().join(".wflow")).unwrap()
    }
}

fn infer_body(rows: &[Vec<f32>], id: Option<&str>) -> serde_json::Value {
    let mut body = serde_json::json!({
        "inputs": [{ "name": "features", "shape": [rows.len(), rows[0].len()], "datatype": "FP32", "data": rows }],
        "outputs": [{ "name": "label" }],
    });
    if let Some(id) = id {
        body["id"] = serde_json::json!(id);
    }
    body
}

/// Sends one row; returns the status and the version that answered.
fn infer(address: &str, row: &[f32], headers: &[(&str, &str)]) -> (u16, String) {
    let answer = post_json(
        address,
        "/v2/models/bc/infer",
        headers,
        &infer_body(&[row.to_vec()], None),
    );
    let version = if answer.status == 200 {
        answer.json()["model_version"].as_str().unwrap().to_string()
    } else {
        String::new()
    };
    (answer.status, version)
}

fn events(address: &str) -> Vec<serde_json::Value> {
    get(address, "/v2/events").json()["events"]
        .as_array()
        .unwrap()
        .clone()
}

fn event_of<'a>(events: &'a [serde_json::Value], kind: &str) -> Option<&'a serde_json::Value> {
    events.iter().find(|e| e["kind"] == kind)
}

fn deployment(address: &str) -> serde_json::Value {
    get(address, "/v2/models/bc/deployment").json()
}

/// The value of one sample in Prometheus text.
fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find(|line| line.starts_with(series) && line[series.len()..].starts_with(' '))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// The number of the latest event.
fn last_event(address: &str) -> u64 {
    events(address)
        .last()
        .map_or(0, |e| e["seq"].as_u64().unwrap())
}

/// Waits for an event of `kind` after event `since` that `matches`, by long-polling the
/// events endpoint; fails after `seconds`.
fn wait_for(
    address: &str,
    since: u64,
    kind: &str,
    matches: impl Fn(&serde_json::Value) -> bool,
    seconds: u64,
) -> serde_json::Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
    let mut since = since;
    loop {
        let answer = get(address, &format!("/v2/events?since={since}&wait=1s")).json();
        for event in answer["events"].as_array().unwrap() {
            since = event["seq"].as_u64().unwrap();
            if event["kind"] == kind && matches(event) {
                return event.clone();
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no `{kind}` event within {seconds} s: {:?}",
            events(address)
        );
    }
}

#[test]
fn a_gated_canary_ramps_through_its_steps_and_is_promoted() {
    let project = Project::new();
    project.champion_and_challenger("{}", r#""canary", canary_percent = 20"#);
    // No minimum duration here, so the ramp is decided by its requests alone.
    let served = project.serve(
        "[rollout]\ncanary_steps = [20, 50]\nstep_requests = 40\nstep_duration = \"0s\"\nmin_duration = \"0s\"\n[rollback]\nmin_requests = 40\n",
    );
    let status = deployment(&served.address);
    assert_eq!(status["challenger"]["strategy"], "canary", "{status}");
    assert_eq!(status["challenger"]["percent"], 20.0, "{status}");
    assert!(
        status["challenger"]["why"]
            .as_str()
            .unwrap()
            .contains("gate decided canary at 20%"),
        "{status}"
    );

    let row = &project.rows(1)[0];
    let mut answered = Vec::new();
    for _ in 0..300 {
        let (status, version) = infer(&served.address, row, &[]);
        assert_eq!(status, 200);
        answered.push(version);
    }
    let v2 = |range: std::ops::Range<usize>| answered[range].iter().filter(|v| *v == "2").count();
    // Exactly 20% until the first step's 40 challenger requests (200 requests), then 50% for
    // the next 40 (80 requests), then v2 is the champion and answers everything.
    let seen = format!("{answered:?} {:#?}", events(&served.address));
    assert_eq!(v2(0..100), 20, "{seen}");
    assert_eq!(v2(0..200), 40, "{seen}");
    assert_eq!(v2(200..280), 40, "{seen}");
    assert_eq!(v2(280..300), 20, "{seen}");

    let events = events(&served.address);
    let step = event_of(&events, "canary-step").expect("a canary step");
    assert!(
        step["message"]
            .as_str()
            .unwrap()
            .starts_with("canary now at 50%"),
        "{step}"
    );
    let promoted = event_of(&events, "promoted").expect("a promotion");
    assert!(
        promoted["message"]
            .as_str()
            .unwrap()
            .contains("v2 promoted over v1"),
        "{promoted}"
    );
    let status = deployment(&served.address);
    assert_eq!(status["champion"]["version"], "2", "{status}");
    assert!(status["challenger"].is_null(), "{status}");
    let metrics = get(&served.address, "/metrics").text();
    assert_eq!(
        sample(&metrics, "wflow_promotions_total{model=\"bc\"}"),
        Some(1.0),
        "{metrics}"
    );

    // The registry records the promotion with its reason, by the rollout policy.
    wait_for(
        &served.address,
        0,
        "registry",
        |e| e["message"].as_str().unwrap().contains("bc@champion -> v2"),
        30,
    );
    let store = project.store();
    assert_eq!(store.alias("bc", "champion").unwrap(), Some(2));
    assert_eq!(store.alias("bc", "challenger").unwrap(), None);
    let history = store.alias_history("bc", Some("champion")).unwrap();
    let last = history.last().unwrap();
    assert!(
        last.reason
            .starts_with("automatic promotion: canary healthy through 20%, 50%"),
        "{}",
        last.reason
    );
    assert_eq!(
        last.actor,
        Actor::Policy {
            action: "canary promotion".into()
        }
    );
}

#[test]
fn an_ab_split_is_exact_sticky_per_key_and_counted_per_arm() {
    let project = Project::new();
    project.champion_and_challenger("{}", r#""canary""#);
    let served =
        project.serve("[rollout]\nstrategy = \"ab\"\nab_percent = 30\nstep_requests = 1\n");
    let row = &project.rows(1)[0];
    let versions: Vec<String> = (0..100)
        .map(|_| infer(&served.address, row, &[]).1)
        .collect();
    assert_eq!(versions.iter().filter(|v| *v == "2").count(), 30);

    // A caller giving a routing key (header or request parameter) always lands on one side.
    let mut sides = std::collections::BTreeMap::new();
    for round in 0..3 {
        for user in 0..40 {
            let key = format!("user-{user}");
            let version = if round == 1 {
                let mut body = infer_body(std::slice::from_ref(row), None);
                body["parameters"] = serde_json::json!({ "routing_key": key });
                post_json(&served.address, "/v2/models/bc/infer", &[], &body).json()
                    ["model_version"]
                    .as_str()
                    .unwrap()
                    .to_string()
            } else {
                infer(&served.address, row, &[("x-routing-key", &key)]).1
            };
            let first = sides.entry(key.clone()).or_insert_with(|| version.clone());
            assert_eq!(*first, version, "{key} changed sides");
        }
    }
    let on_b = sides.values().filter(|v| *v == "2").count();
    assert!(
        (4..=24).contains(&on_b),
        "{on_b} of 40 keys on the challenger"
    );

    // An A/B split is not ramped or promoted, however many requests it answers.
    let status = deployment(&served.address);
    assert_eq!(status["challenger"]["strategy"], "ab", "{status}");
    assert_eq!(status["challenger"]["percent"], 30.0, "{status}");
    let metrics = get(&served.address, "/metrics").text();
    let count = |version: &str, arm: &str| {
        sample(
            &metrics,
            &format!(
                "wflow_inference_requests_total{{model=\"bc\",version=\"{version}\",arm=\"{arm}\"}}"
            ),
        )
        .unwrap_or(0.0)
    };
    assert_eq!(
        count("1", "champion") + count("2", "challenger"),
        220.0,
        "{metrics}"
    );
    assert_eq!(
        count("2", "challenger"),
        30.0 + 3.0 * on_b as f64,
        "{metrics}"
    );
    assert!(
        metrics.contains("wflow_challenger_traffic_percent{model=\"bc\",champion=\"1\",challenger=\"2\",strategy=\"ab\"} 30"),
        "{metrics}"
    );
}

#[test]
fn a_shadow_is_compared_with_the_champion_and_rolled_back_when_feedback_shows_it_worse() {
    let project = Project::new();
    // The challenger is regularised to uselessness: it predicts the majority class.
    project.champion_and_challenger("{ c = 0.000001 }", r#""shadow""#);
    let served = project.serve("[rollback]\nmin_feedback = 30\n");
    let bearer = [("authorization", BEARER)];
    let rows = project.rows(60);
    for (i, row) in rows.iter().enumerate() {
        let answer = post_json(
            &served.address,
            "/v2/models/bc/infer",
            &[],
            &infer_body(std::slice::from_ref(row), Some(&format!("r{i}"))),
        );
        assert_eq!(answer.status, 200);
        // Only the champion answers.
        assert_eq!(answer.json()["model_version"], "1");
    }
    // Ground truth arrives: the champion is right, the shadow often wrong.
    for (i, label) in project.labels(60).iter().enumerate() {
        let answer = post_json(
            &served.address,
            "/v2/models/bc/feedback",
            &bearer,
            &serde_json::json!({ "id": format!("r{i}"), "truth": [label] }),
        );
        assert_eq!(answer.status, 200, "{}", answer.text());
    }
    // The rollback is decided by the feedback request that gives the 30th row of both.
    let events = events(&served.address);
    let rolled_back = event_of(&events, "rolled-back").expect("a rollback");
    let message = rolled_back["message"].as_str().unwrap();
    assert!(message.contains("live accuracy"), "{message}");
    // Its agreement with the champion as a shadow is part of the record.
    let agreement: f64 = message
        .split("agreed with the champion on ")
        .nth(1)
        .and_then(|rest| rest.split('%').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no agreement in {message}"));
    assert!(agreement < 90.0, "{message}");
    assert!(deployment(&served.address)["challenger"].is_null());
    let metrics = get(&served.address, "/metrics").text();
    let copies = sample(
        &metrics,
        "wflow_inference_requests_total{model=\"bc\",version=\"2\",arm=\"shadow\"}",
    )
    .unwrap_or(0.0);
    assert!(copies >= 30.0, "{metrics}");
    let quality = get(&served.address, "/v2/models/bc/quality").json();
    assert!(
        quality["versions"]["1"]["accuracy"].as_f64().unwrap() > 0.9,
        "{quality}"
    );
    assert!(
        quality["versions"]["2"]["accuracy"].as_f64().unwrap() < 0.8,
        "{quality}"
    );
    wait_for(
        &served.address,
        0,
        "registry",
        |e| e["message"].as_str().unwrap().contains("removed"),
        30,
    );
    let history = project
        .store()
        .alias_history("bc", Some("challenger"))
        .unwrap();
    let last = history.last().unwrap();
    assert!(last.rollback && last.to.is_none(), "{last:?}");
    assert!(
        last.reason.starts_with("automatic rollback: live accuracy"),
        "{}",
        last.reason
    );
    // The next server start does not bring the shadow back.
    drop(served);
    let again = project.serve("");
    assert!(deployment(&again.address)["challenger"].is_null());
}

#[test]
fn a_canary_that_fails_requests_is_rolled_back_and_traffic_returns_to_the_champion() {
    let project = Project::new();
    // The challenger was trained on two features: every 30-feature request fails on it.
    project.champion_and_challenger(
        r#"{ features = ["mean_radius", "mean_texture"] }"#,
        r#""canary", canary_percent = 50"#,
    );
    let served = project.serve("[rollback]\nmin_requests = 20\n");
    let row = &project.rows(1)[0];
    // Every request the router gives the challenger fails on it; the champion answers those
    // instead, so no caller sees the broken canary, and each failure counts against it.
    for _ in 0..100 {
        let (status, version) = infer(&served.address, row, &[]);
        assert_eq!((status, version.as_str()), (200, "1"));
    }
    // The guard judges after its 20 challenger requests and acts at once.
    let events = events(&served.address);
    let rolled_back = event_of(&events, "rolled-back").expect("a rollback");
    assert!(
        rolled_back["message"]
            .as_str()
            .unwrap()
            .contains("error rate 100.0% over 20 requests, the champion's 0.0%"),
        "{rolled_back}"
    );
    let metrics = get(&served.address, "/metrics").text();
    assert_eq!(
        sample(&metrics, "wflow_rollbacks_total{model=\"bc\"}"),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(
        sample(
            &metrics,
            "wflow_inference_errors_total{model=\"bc\",version=\"2\",arm=\"challenger\",status=\"400\"}"
        ),
        Some(20.0),
        "{metrics}"
    );
    wait_for(
        &served.address,
        0,
        "registry",
        |e| e["message"].as_str().unwrap().contains("removed"),
        30,
    );
    assert_eq!(project.store().alias("bc", "challenger").unwrap(), None);
    let why = wflow(project.path(), &["models", "why", "bc@champion"]);
    assert!(why.status.success(), "{}", stderr(&why));
}

#[test]
fn live_inputs_are_checked_for_drift_against_the_training_data() {
    let project = Project::new();
    project.train("{}", r#"{ no_champion = "promote" }"#);
    let served =
        project.serve("[monitor]\ndrift_every = \"100ms\"\ndrift_min_rows = 100\nwindow = 400\n");
    let rows = project.rows(400);
    for chunk in rows.chunks(50) {
        let answer = post_json(
            &served.address,
            "/v2/models/bc/infer",
            &[],
            &infer_body(chunk, None),
        );
        assert_eq!(answer.status, 200);
    }
    // The scheduled check runs by itself on the rows seen.
    wait_for(&served.address, 0, "drift", |_| true, 60);
    let drift = get(&served.address, "/v2/models/bc/drift").json();
    let latest = &drift["versions"]["1"]["latest"];
    assert_eq!(latest["drifted"], false, "{drift}");
    assert!(
        latest["features"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["feature"] == "prediction"),
        "the predictions are compared too: {drift}"
    );

    // Traffic shifts: every feature twice as large.
    let shifted: Vec<Vec<f32>> = rows
        .iter()
        .map(|r| r.iter().map(|x| x * 2.0).collect())
        .collect();
    for chunk in shifted.chunks(50) {
        post_json(
            &served.address,
            "/v2/models/bc/infer",
            &[],
            &infer_body(chunk, None),
        );
    }
    let refused = http(&served.address, "POST", "/v2/models/bc/drift", &[], b"");
    assert_eq!(refused.status, 401);
    let checked = http(
        &served.address,
        "POST",
        "/v2/models/bc/drift",
        &[("authorization", BEARER)],
        b"",
    );
    assert_eq!(checked.status, 200, "{}", checked.text());
    let report = &checked.json()["versions"]["1"];
    assert_eq!(report["drifted"], true, "{report}");
    assert!(report["drift_share"].as_f64().unwrap() > 0.5, "{report}");
    let metrics = get(&served.address, "/metrics").text();
    assert_eq!(
        sample(&metrics, "wflow_drift_detected{model=\"bc\",version=\"1\"}"),
        Some(1.0),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            "wflow_drift_score{model=\"bc\",version=\"1\",feature=\"mean_radius\",method=\"psi\"}"
        ),
        "{metrics}"
    );
    let events = events(&served.address);
    let drift = events
        .iter()
        .rfind(|e| e["kind"] == "drift")
        .expect("a drift event");
    assert!(
        drift["message"].as_str().unwrap().contains("drifted"),
        "{drift}"
    );
}

#[test]
fn admin_actions_need_the_token_and_move_the_registry() {
    let project = Project::new();
    project.champion_and_challenger("{}", r#""shadow""#);
    let served = project.serve("");
    let address = &served.address;
    for (method, path, body) in [
        ("POST", "/v2/models/bc/promote", ""),
        ("POST", "/v2/models/bc/rollback", ""),
        ("PUT", "/v2/models/bc/deployment", r#"{"strategy": "ab"}"#),
        ("POST", "/v2/repository/models/bc/load", ""),
    ] {
        let answer = http(address, method, path, &[], body.as_bytes());
        assert_eq!(answer.status, 401, "{method} {path}");
        let wrong = http(
            address,
            method,
            path,
            &[("authorization", "Bearer no")],
            body.as_bytes(),
        );
        assert_eq!(wrong.status, 401, "{method} {path}");
    }
    let admin = |method: &str, path: &str, body: &str| -> Answer {
        http(
            address,
            method,
            path,
            &[("authorization", BEARER)],
            body.as_bytes(),
        )
    };

    // The shadow becomes an A/B split at 40%, then stops.
    let ab = admin(
        "PUT",
        "/v2/models/bc/deployment",
        r#"{"strategy": "ab", "percent": 40}"#,
    );
    assert_eq!(ab.status, 200, "{}", ab.text());
    assert_eq!(ab.json()["challenger"]["strategy"], "ab");
    assert_eq!(ab.json()["challenger"]["percent"], 40.0);
    let bad = admin(
        "PUT",
        "/v2/models/bc/deployment",
        r#"{"strategy": "blue-green"}"#,
    );
    assert_eq!(bad.status, 400);
    assert!(bad.text().contains("blue-green"), "{}", bad.text());
    let off = admin("PUT", "/v2/models/bc/deployment", r#"{"strategy": "off"}"#);
    assert!(off.json()["challenger"].is_null(), "{}", off.text());
    assert_eq!(project.store().alias("bc", "challenger").unwrap(), None);

    // Promote v2 by number, then roll the champion back to v1.
    let promoted = admin("POST", "/v2/models/bc/promote", r#"{"version": 2}"#);
    assert_eq!(promoted.status, 200, "{}", promoted.text());
    assert_eq!(promoted.json()["champion"]["version"], "2");
    let rolled_back = admin("POST", "/v2/models/bc/rollback", "");
    assert_eq!(
        rolled_back.json()["champion"]["version"],
        "1",
        "{}",
        rolled_back.text()
    );
    let history = project
        .store()
        .alias_history("bc", Some("champion"))
        .unwrap();
    let last = history.last().unwrap();
    assert!(last.rollback, "{last:?}");
    assert!(
        matches!(&last.actor, Actor::Command { command, .. } if command == "POST /v2/models/bc/rollback"),
        "{last:?}"
    );
    let unknown = admin("POST", "/v2/models/nope/promote", "");
    assert_eq!(unknown.status, 404);
    let none_left = admin("POST", "/v2/models/bc/promote", "");
    assert_eq!(none_left.status, 400, "{}", none_left.text());
    assert!(none_left.text().contains("no challenger to promote"));

    // A promotion made by another process is followed (the alias stamp changes).
    let before = last_event(address);
    let promote = wflow(
        project.path(),
        &[
            "models", "promote", "bc@2", "--alias", "champion", "--reason", "by hand",
        ],
    );
    assert!(promote.status.success(), "{}", stderr(&promote));
    wait_for(
        address,
        before,
        "redeployed",
        |e| e["message"] == "now serving v2",
        30,
    );
    assert_eq!(deployment(address)["champion"]["version"], "2");
}

#[test]
fn reads_can_require_the_token_too() {
    let project = Project::new();
    project.train("{}", r#"{ no_champion = "promote" }"#);
    let served = serve(project.path(), &["--registry", "bc", "--protect-reads"]);
    assert_eq!(get(&served.address, "/v2/health/live").status, 200);
    assert_eq!(get(&served.address, "/v2/models/bc").status, 401);
    assert_eq!(get(&served.address, "/metrics").status, 401);
    let row = &project.rows(1)[0];
    assert_eq!(infer(&served.address, row, &[]).0, 401);
    assert_eq!(
        infer(&served.address, row, &[("authorization", BEARER)]).0,
        200
    );
    assert_eq!(TOKEN, BEARER.trim_start_matches("Bearer "));
}

#[test]
fn promotions_and_rollbacks_under_load_fail_no_request() {
    let project = Project::new();
    project.champion_and_challenger("{ c = 0.1 }", r#""reject""#);
    let served = project.serve("");
    let address = served.address.clone();
    let row = project.rows(1)[0].clone();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let clients: Vec<_> = (0..3)
        .map(|_| {
            let (address, row, stop) = (address.clone(), row.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut seen = std::collections::BTreeSet::new();
                let mut answered = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) || answered < 50 {
                    let (status, version) = infer(&address, &row, &[]);
                    assert_eq!(status, 200, "a request failed during a swap");
                    seen.insert(version);
                    answered += 1;
                }
                seen
            })
        })
        .collect();
    for round in 0..10 {
        let path = if round % 2 == 0 {
            "/v2/models/bc/promote"
        } else {
            "/v2/models/bc/rollback"
        };
        let body = if round % 2 == 0 {
            r#"{"version": 2}"#
        } else {
            ""
        };
        let answer = http(
            &address,
            "POST",
            path,
            &[("authorization", BEARER)],
            body.as_bytes(),
        );
        assert_eq!(answer.status, 200, "{}", answer.text());
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut seen = std::collections::BTreeSet::new();
    for client in clients {
        seen.extend(client.join().unwrap());
    }
    assert!(
        seen.is_subset(&["1".to_string(), "2".to_string()].into()),
        "{seen:?}"
    );
}
