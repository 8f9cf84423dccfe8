//! The UI's pages through its router (no socket): what each page shows, escaping of what
//! users and plugins wrote, the security headers, and errors as pages.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use tower::ServiceExt;

use super::*;
use crate::store::{Store, Transition};

fn ui(store: Arc<Store>) -> axum::Router {
    router(Ui {
        store: StoreAccess::Shared(store),
        scheduler: None,
        server: None,
        token: Some("secret".into()),
        open_reads: true,
        sessions: Default::default(),
    })
}

async fn page(router: &axum::Router, path: &str) -> (StatusCode, axum::http::HeaderMap, String) {
    let response = router
        .clone()
        .oneshot(Request::get(path).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = axum::body::to_bytes(response.into_body(), 1 << 24)
        .await
        .unwrap();
    (status, headers, String::from_utf8(body.to_vec()).unwrap())
}

fn store_with_runs(count: usize) -> (tempfile::TempDir, Arc<Store>) {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path().join("store")).unwrap());
    for i in 0..count {
        let workflow = if i % 2 == 0 { "alpha" } else { "beta" };
        let run = store
            .create_run(
                workflow,
                std::path::Path::new("w.toml"),
                b"[workflow]\nname = \"alpha\"\n\n[steps.a]\nuses = \"noop\"\n",
                vec!["a".into()],
                false,
            )
            .unwrap();
        store
            .set_run_status(run.id, RunStatus::Succeeded, None)
            .unwrap();
    }
    (dir, store)
}

#[tokio::test]
async fn the_runs_page_lists_a_page_of_runs_newest_first_with_filters() {
    let (_dir, store) = store_with_runs(120);
    let router = ui(store);
    let (status, headers, body) = page(&router, "/ui/runs").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        headers["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("script-src 'self'")
    );
    assert!(body.contains("120 runs in the store"), "{body}");
    assert!(body.contains(r#"href="/ui/runs/120""#));
    assert!(!body.contains(r#"href="/ui/runs/70""#));
    assert!(body.contains(r#"rel="next""#));
    let (_, _, second) = page(&router, "/ui/runs?page=1").await;
    assert!(second.contains(r#"href="/ui/runs/70""#));
    assert!(!second.contains(r#"href="/ui/runs/71""#), "{second}");
    let (_, _, betas) = page(&router, "/ui/runs?workflow=beta&status=succeeded").await;
    assert!(betas.contains(r#"href="/ui/runs/120""#));
    assert!(!betas.contains(r#"href="/ui/runs/119""#));
    let (status, _, bad) = page(&router, "/ui/runs?status=sleeping").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(bad.contains("`sleeping` is not a run status"), "{bad}");
}

#[tokio::test]
async fn a_run_page_draws_its_dag_and_escapes_what_plugins_wrote() {
    let (_dir, store) = store_with_runs(1);
    let mut step = crate::store::StepRecord {
        run: 1,
        index: 0,
        id: "a".into(),
        kind: "validator".into(),
        plugin: "noop@0.1.0".into(),
        plugin_digest: crate::store::digest_of(b"plugin"),
        config: serde_json::json!({}),
        target: None,
        inputs: vec![],
        cache_key: None,
        status: crate::store::StepStatus::Failed,
        transitions: vec![Transition {
            status: crate::store::StepStatus::Failed,
            at: 1,
            note: None,
        }],
        attempts: 1,
        duration_ms: 12,
        outputs: vec![],
        returned_metrics: vec![],
        metrics: vec![("score".into(), 0.5)],
        findings: vec![],
        decision: None,
        failure_kind: Some("failed".into()),
        failure: Some("<script>alert('x')</script>".into()),
        reused: None,
    };
    let log = crate::store::LogRecord::bounded(vec![crate::plugin::LogLine {
        at_ms: 3,
        source: crate::plugin::LogSource::Plugin,
        level: crate::plugin::LogLevel::Info,
        message: "<img src=x onerror=alert(1)>".into(),
        fields: vec![],
    }]);
    store.finish_step(&step, &log, false).unwrap();
    step.index = 1;
    step.id = "b".into();
    step.failure = None;
    step.status = crate::store::StepStatus::Succeeded;
    step.inputs = vec![crate::store::InputRecord {
        slot: "data".into(),
        source: "a.report".into(),
        digest: crate::store::digest_of(b"x"),
    }];
    store
        .finish_step(&step, &crate::store::LogRecord::default(), false)
        .unwrap();
    let router = ui(store);
    let (status, _, body) = page(&router, "/ui/runs/1").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("<svg class=\"dag\""), "{body}");
    assert!(
        body.contains("class=\"edge\""),
        "the input makes an edge: {body}"
    );
    assert!(!body.contains("<script>alert"), "{body}");
    assert!(!body.contains("<img src=x"), "{body}");
    assert!(body.contains("&lt;script&gt;alert"), "{body}");
    assert!(body.contains("score"));
    let (status, _, missing) = page(&router, "/ui/runs/9").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(missing.contains("no run 9"), "{missing}");
}

#[tokio::test]
async fn protected_reads_need_the_token() {
    let (_dir, store) = store_with_runs(1);
    let router = router(Ui {
        store: StoreAccess::Shared(store),
        scheduler: None,
        server: None,
        token: Some("secret".into()),
        open_reads: false,
        sessions: Default::default(),
    });
    let (status, _, _) = page(&router, "/ui/runs").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let response = router
        .clone()
        .oneshot(
            Request::get("/ui/runs")
                .header("authorization", "Bearer secret")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    // The assets are not secrets; they load whatever the rule.
    let (status, headers, _) = page(&router, "/ui/assets/app.js").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/javascript")
    );
}

async fn post(
    router: &axum::Router,
    path: &str,
    cookie: Option<&str>,
    form: &str,
) -> axum::response::Response {
    let mut request =
        Request::post(path).header("content-type", "application/x-www-form-urlencoded");
    if let Some(cookie) = cookie {
        request = request.header("cookie", cookie);
    }
    router
        .clone()
        .oneshot(request.body(Body::from(form.to_string())).unwrap())
        .await
        .unwrap()
}

#[tokio::test]
async fn signing_in_sets_a_private_cookie_and_forms_need_its_csrf_token() {
    let (_dir, store) = store_with_runs(1);
    let mut version = crate::store::ModelVersion {
        name: "m".into(),
        version: 0,
        created: 1,
        onnx: crate::store::digest_of(b"onnx"),
        model_digest: crate::store::digest_of(b"model"),
        features: vec!["x".into()],
        target: "y".into(),
        task: "classification".into(),
        class_labels: vec![],
        metrics: vec![],
        parameters: Default::default(),
        training_data: None,
        reference: Default::default(),
        run: 1,
        step: "register".into(),
        trained_by: "train".into(),
        lineage: vec![],
        decision: None,
        pipeline: None,
    };
    store.add_version(version.clone()).unwrap();
    version.created = 2;
    store.add_version(version).unwrap();
    let router = ui(store.clone());
    // A wrong token signs nobody in; a redirect elsewhere is not followed.
    let refused = post(&router, "/ui/login", None, "token=nope&next=/ui/models").await;
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    let accepted = post(
        &router,
        "/ui/login",
        None,
        "token=secret&next=https://evil.example/",
    )
    .await;
    assert_eq!(accepted.status(), StatusCode::SEE_OTHER);
    assert_eq!(accepted.headers()["location"], "/ui/runs");
    let cookie = accepted.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let session = cookie.split(';').next().unwrap().to_string();
    // Signed in, the model's page has the forms, with the session's CSRF token.
    let response = router
        .clone()
        .oneshot(
            Request::get("/ui/models/m")
                .header("cookie", &session)
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let body = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    let body = String::from_utf8(body.to_vec()).unwrap();
    let csrf = body
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string();
    assert!(body.contains("data-promote=\"2\""), "{body}");
    // Without the cookie, or with another token, nothing moves.
    let anonymous = post(
        &router,
        "/ui/models/m/promote",
        None,
        &format!("version=2&csrf={csrf}"),
    )
    .await;
    assert_eq!(anonymous.status(), StatusCode::FORBIDDEN);
    let forged = post(
        &router,
        "/ui/models/m/promote",
        Some(&session),
        "version=2&csrf=0000",
    )
    .await;
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    assert_eq!(store.alias("m", "champion").unwrap(), None);
    let done = post(
        &router,
        "/ui/models/m/promote",
        Some(&session),
        &format!("version=2&alias=champion&csrf={csrf}"),
    )
    .await;
    assert_eq!(done.status(), StatusCode::SEE_OTHER);
    assert_eq!(store.alias("m", "champion").unwrap(), Some(2));
    let history = store.alias_history("m", None).unwrap();
    assert_eq!(history[0].actor.to_string(), "`web UI: promote` by admin");
}

fn step(
    run: u64,
    index: u32,
    id: &str,
    kind: &str,
    config: serde_json::Value,
    metrics: Vec<(&str, f64)>,
) -> crate::store::StepRecord {
    crate::store::StepRecord {
        run,
        index,
        id: id.into(),
        kind: kind.into(),
        plugin: "p@0.1.0".into(),
        plugin_digest: crate::store::digest_of(b"p"),
        config,
        target: None,
        inputs: vec![],
        cache_key: None,
        status: crate::store::StepStatus::Succeeded,
        transitions: vec![],
        attempts: 1,
        duration_ms: 1,
        outputs: vec![],
        returned_metrics: vec![],
        metrics: metrics
            .into_iter()
            .map(|(n, v)| (n.to_string(), v))
            .collect(),
        findings: vec![],
        decision: None,
        failure_kind: None,
        failure: None,
        reused: None,
    }
}

#[tokio::test]
async fn runs_compare_side_by_side_with_charts_of_metrics_and_trials() {
    let (_dir, store) = store_with_runs(2);
    for (run, c_max, accuracy) in [(1u64, 10.0, 0.95), (2, 100.0, 0.97)] {
        let trainer = step(
            run,
            0,
            "train",
            "trainer",
            serde_json::json!({ "c": [0.01, c_max], "search": "grid" }),
            vec![
                ("trial.0.c", 0.01),
                ("trial.0.cv_accuracy", 0.9),
                ("trial.0.cv_accuracy_std", 0.01),
                ("trial.1.c", c_max),
                ("trial.1.cv_accuracy", accuracy),
                ("trial.1.cv_accuracy_std", 0.01),
                ("best.c", c_max),
                ("cv_score", accuracy),
            ],
        );
        store
            .finish_step(&trainer, &crate::store::LogRecord::default(), false)
            .unwrap();
        let evaluator = step(
            run,
            1,
            "evaluate",
            "evaluator",
            serde_json::json!({}),
            vec![("accuracy", accuracy)],
        );
        store
            .finish_step(&evaluator, &crate::store::LogRecord::default(), false)
            .unwrap();
    }
    let router = ui(store);
    let (status, _, body) = page(&router, "/ui/compare?runs=1&runs=2").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // The differing parameter is marked; trial metrics stay out of the metrics table.
    assert!(
        body.contains("<tr class=\"differs\"><th>train.c</th>"),
        "{body}"
    );
    assert!(body.contains("data-metric=\"evaluate.accuracy\""));
    assert!(!body.contains("data-metric=\"train.trial.0.c\""));
    assert!(body.contains("aria-label=\"evaluate.accuracy\""), "{body}");
    assert!(body.contains("train: cv_accuracy per c"), "{body}");
    assert!(body.contains("(log scale)"), "c spans four decades: {body}");
    let (status, _, body) = page(&router, "/ui/compare?runs=1,x").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("`x` is not a run number"));
}

#[test]
fn drift_checks_become_a_score_per_feature_over_time() {
    use crate::serve::monitor::{DriftReport, DriftResult, FeatureScore};
    let report = |at: u64, score: f64| DriftReport {
        at,
        rows: 100,
        result: DriftResult::Checked {
            drifted: score > 0.2,
            drift_share: 0.5,
            features: vec![FeatureScore {
                feature: "x".into(),
                method: "psi".into(),
                score,
                p_value: None,
                threshold: 0.2,
                drifted: score > 0.2,
            }],
        },
    };
    assert!(super::pages::drift_view(&[]).is_none());
    let (series, latest, checks) =
        super::pages::drift_view(&[report(1_000, 0.05), report(3_000, 0.4)]).unwrap();
    assert_eq!(checks, 2);
    assert_eq!(series[0].label, "x (psi)");
    assert_eq!(series[0].points, vec![(0.0, 0.05), (2.0, 0.4)]);
    assert!(latest[0].drifted);
}

#[tokio::test]
async fn failed_sign_ins_are_throttled_per_client() {
    let (_dir, store) = store_with_runs(1);
    let router = ui(store);
    for _ in 0..super::admin::FAILURES_ALLOWED {
        let refused = post(&router, "/ui/login", None, "token=guess&next=/ui/runs").await;
        assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    }
    // Past the allowance even the right token waits: guessing cannot go at network speed.
    let throttled = post(&router, "/ui/login", None, "token=secret&next=/ui/runs").await;
    assert_eq!(throttled.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(throttled.headers().contains_key("retry-after"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_guesses_cannot_all_pass_the_throttle_before_one_is_counted() {
    let (_dir, store) = store_with_runs(1);
    let router = ui(store);
    let guesses = (0..40).map(|_| {
        let router = router.clone();
        tokio::spawn(async move {
            post(&router, "/ui/login", None, "token=guess&next=/ui/runs")
                .await
                .status()
        })
    });
    let statuses = futures_util::future::join_all(guesses).await;
    let judged = statuses
        .iter()
        .filter(|status| *status.as_ref().unwrap() == StatusCode::UNAUTHORIZED)
        .count();
    assert_eq!(
        judged,
        super::admin::FAILURES_ALLOWED as usize,
        "{statuses:?}"
    );
}
