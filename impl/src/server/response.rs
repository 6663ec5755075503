//! Plain responses: a status and a one-line text body saying what to do.

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};

pub type Body = BoxBody<Bytes, hyper::Error>;

pub fn text(status: StatusCode, message: impl Into<String>) -> Response<Body> {
    let mut body = message.into();
    body.push('\n');
    Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(full(Bytes::from(body)))
        .expect("static parts are valid")
}

pub fn full(bytes: Bytes) -> Body {
    Full::new(bytes).map_err(|never| match never {}).boxed()
}

/// A refusal decided before any response is built: a status and what to do.
#[derive(Debug, PartialEq, Eq)]
pub struct Refusal(pub StatusCode, pub &'static str);

impl Refusal {
    pub fn response(self) -> Response<Body> {
        text(self.0, self.1)
    }
}
