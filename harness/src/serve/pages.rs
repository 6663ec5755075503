//! The web UI's routes: three pages (static files that fetch JSON), their
//! assets, the JSON they read, and the user switcher.
//!
//! - `/`: the pipeline's jobs; `/-/jobs/<id>`: a job's page; `/-/jobs/<id>/terminal`: its terminal
//! - `/-/assets/<name>`: scripts and styles, xterm.js included
//! - `/-/ui/session`, `/-/ui/jobs`, `/-/ui/jobs/<id>`: what the pages show
//! - `/-/login?user=<name>`: log in as a scenario user (empty: log out)

use bytes::Bytes;
use http::{header, Request, Response, StatusCode};
use http_body_util::Full;
use serde::Serialize;

use super::assets::{self, Asset, XTERM_VERSION};
use crate::actors::gitlab::{Gitlab, JobView};
use crate::actors::workhorse::LOGIN_COOKIE;

pub fn page<B>(request: &Request<B>, user: Option<&str>, gitlab: &Gitlab) -> Response<Full<Bytes>> {
    if ![http::Method::GET, http::Method::HEAD].contains(request.method()) {
        return text(StatusCode::METHOD_NOT_ALLOWED, "the pages take GET only");
    }
    let path = request.uri().path();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match segments.as_slice() {
        [""] => file(&assets::JOBS_PAGE),
        ["-", "jobs", id] if id.parse::<u64>().is_ok() => file(&assets::JOB_PAGE),
        ["-", "jobs", id, "terminal"] if id.parse::<u64>().is_ok() => file(&assets::TERMINAL_PAGE),
        ["-", "assets", ..] => match assets::find(&path["/-/assets/".len()..]) {
            Some(asset) => file(asset),
            None => text(StatusCode::NOT_FOUND, "no such asset"),
        },
        ["-", "login"] => login(request.uri().query().unwrap_or(""), gitlab),
        ["-", "ui", "session"] => json(&session(user, gitlab)),
        ["-", "ui", "jobs"] => {
            let jobs: Vec<JobPage> = gitlab
                .jobs()
                .into_iter()
                .map(|j| job_page(j, user, gitlab, false))
                .collect();
            json(&jobs)
        }
        ["-", "ui", "jobs", id] => match id.parse::<u64>().ok().and_then(|id| {
            let job = gitlab.jobs().into_iter().find(|j| j.id == id)?;
            Some(job_page(job, user, gitlab, true))
        }) {
            Some(job) => json(&job),
            None => text(StatusCode::NOT_FOUND, "no such job"),
        },
        _ => text(StatusCode::NOT_FOUND, "no such page"),
    }
}

/// Who is logged in, and whom one may switch to.
#[derive(Serialize)]
struct SessionView {
    user: Option<String>,
    users: Vec<UserView>,
    xterm: &'static str,
}

#[derive(Serialize)]
struct UserView {
    name: String,
    role: crate::scenario::Role,
}

fn session(user: Option<&str>, gitlab: &Gitlab) -> SessionView {
    SessionView {
        user: user.map(str::to_string),
        users: gitlab
            .users()
            .into_iter()
            .map(|(name, role)| UserView { name, role })
            .collect(),
        xterm: XTERM_VERSION,
    }
}

/// A job as its page shows it to `user`.
#[derive(Serialize)]
struct JobPage {
    #[serde(flatten)]
    job: JobView,
    /// The Debug button: Rails' own answer for this user (AU-1/2).
    debug: bool,
    /// Why there is no Debug button.
    no_debug: Option<&'static str>,
    /// The job log (on the job's own page only).
    log: Option<String>,
}

fn job_page(job: JobView, user: Option<&str>, gitlab: &Gitlab, with_log: bool) -> JobPage {
    let authorized = gitlab.authorize(user, job.id);
    let log = with_log
        .then(|| gitlab.log(job.id))
        .flatten()
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned());
    JobPage {
        debug: authorized.is_ok(),
        no_debug: authorized.err().map(|d| d.reason),
        log,
        job,
    }
}

/// Sets (or, with an empty or unknown user, clears) the login cookie, then
/// back to where the switcher was.
fn login(query: &str, gitlab: &Gitlab) -> Response<Full<Bytes>> {
    let mut user = "";
    let mut back = "/";
    for (key, value) in query.split('&').filter_map(|kv| kv.split_once('=')) {
        match key {
            "user" => user = value,
            // Only a path of this site: never a redirect elsewhere.
            "back" if value.starts_with("%2F") || value.starts_with('/') => back = value,
            _ => {}
        }
    }
    let back = back.replace("%2F", "/");
    let known = gitlab.users().iter().any(|(name, _)| name == user);
    let cookie = if known {
        format!("{LOGIN_COOKIE}={user}; Path=/; SameSite=Strict")
    } else {
        format!("{LOGIN_COOKIE}=; Path=/; Max-Age=0; SameSite=Strict")
    };
    Response::builder()
        .status(StatusCode::SEE_OTHER)
        .header(header::LOCATION, back)
        .header(header::SET_COOKIE, cookie)
        .body(Full::new(Bytes::new()))
        .expect("valid response")
}

fn file(asset: &Asset) -> Response<Full<Bytes>> {
    Response::builder()
        .header(header::CONTENT_TYPE, asset.content_type)
        .header(header::CACHE_CONTROL, "no-cache")
        .body(Full::new(Bytes::from_static(asset.bytes)))
        .expect("valid response")
}

fn json<T: Serialize>(value: &T) -> Response<Full<Bytes>> {
    Response::builder()
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CACHE_CONTROL, "no-store")
        .body(Full::new(Bytes::from(
            serde_json::to_vec(value).expect("serializable"),
        )))
        .expect("valid response")
}

pub fn text(status: StatusCode, why: &str) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(Full::new(Bytes::from(format!("{why}\n"))))
        .expect("valid response")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actors::gitlab::JobDef;
    use crate::scenario::Role;
    use crate::trace::Recorder;

    fn gitlab() -> Gitlab {
        let gitlab = Gitlab::new(Recorder::default(), "t", None);
        gitlab.add_user("alice", Role::Developer);
        gitlab.add_job(JobDef {
            id: 1,
            owner: "alice".into(),
            project: "demo".into(),
            script: vec!["true".into()],
            timeout: std::time::Duration::from_secs(60),
            variables: Vec::new(),
            image: None,
            webide: false,
            services: None,
        });
        gitlab
    }

    fn get(path: &str, user: Option<&str>) -> Response<Full<Bytes>> {
        let request = Request::get(path).body(()).unwrap();
        page(&request, user, &gitlab())
    }

    #[test]
    fn login_sets_the_cookie_of_a_known_user_and_clears_it_otherwise() {
        let known = get("/-/login?user=alice&back=%2F-%2Fjobs%2F1", None);
        assert_eq!(known.status(), StatusCode::SEE_OTHER);
        assert_eq!(known.headers()[header::LOCATION], "/-/jobs/1");
        let cookie = known.headers()[header::SET_COOKIE].to_str().unwrap();
        assert!(cookie.starts_with("harness_user=alice;"), "{cookie}");
        let unknown = get("/-/login?user=mallory&back=https://elsewhere", None);
        assert_eq!(unknown.headers()[header::LOCATION], "/");
        let cookie = unknown.headers()[header::SET_COOKIE].to_str().unwrap();
        assert!(cookie.contains("Max-Age=0"), "{cookie}");
    }

    #[test]
    fn a_pending_job_offers_no_debug_button_and_says_why() {
        let response = get("/-/ui/jobs/1", Some("alice"));
        assert_eq!(response.status(), StatusCode::OK);
        let body = futures_util::FutureExt::now_or_never(http_body_util::BodyExt::collect(
            response.into_body(),
        ))
        .unwrap()
        .unwrap()
        .to_bytes();
        let job: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(job["status"], "pending");
        assert_eq!(job["debug"], false);
        assert!(job["no_debug"].as_str().unwrap().contains("no terminal"));
    }

    #[test]
    fn unknown_pages_and_assets_are_404() {
        assert_eq!(get("/-/jobs/x", None).status(), StatusCode::NOT_FOUND);
        assert_eq!(
            get("/-/assets/nothing.js", None).status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            get("/-/assets/xterm/xterm.js", None).status(),
            StatusCode::OK
        );
    }
}
