//! Who gets to the terminal: TLS with the session certificate (TLS-1/2), the
//! session's routes (RT-1/2), the token (EX-1, EX-7), the upgrade (EX-2).
//! Every refusal must come before any shell.

use bytes::Bytes;
use http_body_util::Empty;
use hyper_util::rt::TokioIo;
use session_server::net::TokioNet;

use super::terminal::close;
use super::{failure, handshake, BadToken, Checked, Route, Target, TERMINAL};
use crate::actors::ws::{self, Dialed, Trust};

pub async fn tls(t: &Target) -> Checked {
    let tls = Some(Trust::Pem(&t.session.certificate));
    match ws::connect(&TokioNet, &t.address, tls).await {
        Ok(_) => Ok(Vec::new()),
        Err(why) => Err(failure(
            "TLS handshake with the session",
            "a TLS 1.2 or 1.3 session, trusting only the session certificate",
            why,
        )),
    }
}

/// A path other than the session's `exec`: 404 with the right token.
pub async fn routing(route: Route, t: &Target) -> Checked {
    let token = Some(t.session.authorization.clone());
    let url = match route {
        Route::UnknownSession => {
            let (endpoint, id) = t.base.rsplit_once('/').unwrap_or((&t.base, ""));
            let other = if id.starts_with('0') { "1" } else { "0" }.repeat(id.len().max(64));
            format!("{endpoint}/{other}/exec")
        }
        Route::IdPrefix => format!("{}0/exec", t.base),
        Route::UnknownEndpoint => format!("{}/shell", t.base),
    };
    refused(t, &url, token, 404).await
}

/// The token cases: each wrong shape of `Authorization` is 401.
pub async fn token(shape: BadToken, t: &Target) -> Checked {
    let token = &t.session.authorization;
    let header = match shape {
        BadToken::Missing => None,
        BadToken::Wrong => Some(same_length(token)),
        BadToken::Appended => Some(format!("{token}0")),
        BadToken::Prefix => Some(token[..token.len().saturating_sub(1)].to_string()),
        BadToken::OtherCase => Some(other_case(token)),
        BadToken::Bearer => Some(format!("Bearer {token}")),
    };
    refused(t, &t.exec(), header, 401).await
}

/// Another token of the same length: every character changed.
fn same_length(token: &str) -> String {
    token
        .chars()
        .map(|c| if c == '0' { '1' } else { '0' })
        .collect::<String>()
        + if token.is_empty() { "0" } else { "" }
}

/// The token with the case of its letters swapped; a token without letters
/// gets a letter appended in place of one, so that it still differs.
fn other_case(token: &str) -> String {
    let swapped: String = token
        .chars()
        .map(|c| {
            if c.is_ascii_lowercase() {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            }
        })
        .collect();
    if swapped == token {
        format!("{}A", &token[..token.len().saturating_sub(1)])
    } else {
        swapped
    }
}

pub async fn not_an_upgrade(t: &Target) -> Checked {
    match plain_get(t, &t.session.authorization).await {
        Ok(405) => Ok(Vec::new()),
        Ok(status) => Err(failure(
            "a GET of exec without Upgrade",
            "405",
            status.to_string(),
        )),
        Err(why) => Err(failure("a GET of exec without Upgrade", "405", why)),
    }
}

/// An upgrade of `url` with `token` must get `status`.
async fn refused(t: &Target, url: &str, token: Option<String>, status: u16) -> Checked {
    let headers: Vec<(&str, String)> = token
        .map(|v| vec![("authorization", v)])
        .unwrap_or_default();
    let dialed = handshake::open(url, &t.session.certificate, &headers, &[TERMINAL]).await;
    let check = format!("a terminal request to {}", redact(url, t));
    match dialed {
        Dialed::Refused { status: got, .. } if got == status => Ok(Vec::new()),
        Dialed::Refused { status: got, body } => {
            Err(failure(&check, status.to_string(), format!("{got} {body}")))
        }
        Dialed::Open { mut ws, .. } => {
            close(&mut ws).await;
            Err(failure(&check, status.to_string(), "101: a terminal"))
        }
        Dialed::Failed(why) => Err(failure(&check, status.to_string(), why)),
    }
}

/// The session's URL without its secret parts, for a report.
fn redact(url: &str, t: &Target) -> String {
    url.replace(&t.base, "<session>")
}

/// A plain GET of exec with the token, over TLS: the status.
async fn plain_get(t: &Target, token: &str) -> Result<u16, String> {
    let io = ws::connect(
        &TokioNet,
        &t.address,
        Some(Trust::Pem(&t.session.certificate)),
    )
    .await?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| format!("HTTP/1.1 handshake: {e}"))?;
    let driver = tokio::spawn(connection);
    let path = t
        .exec()
        .split_once(&t.address)
        .map(|(_, p)| p.to_string())
        .unwrap_or_default();
    let request = http::Request::get(path)
        .header(http::header::HOST, &t.address)
        .header(http::header::AUTHORIZATION, token)
        .body(Empty::<Bytes>::new())
        .map_err(|e| format!("building the request: {e}"))?;
    let answer = sender
        .send_request(request)
        .await
        .map_err(|e| format!("no answer: {e}"));
    driver.abort();
    Ok(answer?.status().as_u16())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_wrong_token_differs_from_the_token() {
        for token in ["a1b2", "0000", "", "ABC"] {
            assert_ne!(same_length(token), token);
            assert_eq!(same_length(token).len(), token.len().max(1));
            assert_ne!(other_case(token), token);
            assert!(
                other_case(token).eq_ignore_ascii_case(token)
                    || !token.chars().any(|c| c.is_ascii_alphabetic())
            );
        }
        assert_eq!(other_case("a1b2"), "A1B2");
    }
}
