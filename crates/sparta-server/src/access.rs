//! The access layer: who may ask, decided before memory, storage or the
//! upstream is touched. The decisions are sparta-access's pure functions;
//! this file feeds them the request and turns refusals into responses.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use prometheus::{IntCounter, IntCounterVec, Opts};
use sparta_access::auth::Check;
use sparta_access::{
    AuthFailure, Authenticator, IpNet, ModuleRules, ModuleVerdict, NetPolicy, Principal,
};
use sparta_core::{InfoVersion, ProxyRequest};
use tracing::warn;

use crate::metrics::Metrics;

/// Everything the access layer decides with.
#[derive(Default)]
pub struct AccessConfig {
    pub net: NetPolicy,
    pub trusted_proxies: Vec<IpNet>,
    pub rules: ModuleRules,
    pub auth: Option<Arc<Authenticator>>,
}

/// The access layer with its metric series, resolved once.
pub struct Access {
    config: AccessConfig,
    allowed: IntCounter,
    denied_address: IntCounter,
    unauthenticated: IntCounter,
    bad_credentials: IntCounter,
    excluded_module: IntCounter,
}

/// Who is asking, as far as the layer found out.
#[derive(Debug, Clone, Default)]
pub struct Caller {
    /// The client address (behind trusted proxies, the forwarded one).
    pub client: Option<IpAddr>,
    pub principal: Option<Principal>,
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    Address,
    Auth(AuthFailure),
    Module(String),
}

impl Refusal {
    /// The `decision` label and the audit log's word for it.
    pub fn label(&self) -> &'static str {
        match self {
            Refusal::Address => "denied_address",
            Refusal::Auth(AuthFailure::Missing) => "unauthenticated",
            Refusal::Auth(_) => "bad_credentials",
            Refusal::Module(_) => "excluded_module",
        }
    }

    /// 401 with a Basic challenge, or 403 with a short reason the go
    /// command prints. A 403 also stops its `,` fallback, on purpose.
    pub fn into_response(self) -> Response {
        let (status, body) = match &self {
            Refusal::Address => (
                StatusCode::FORBIDDEN,
                "sparta: requests from your address are not allowed\n".to_owned(),
            ),
            Refusal::Auth(AuthFailure::Missing) => (
                StatusCode::UNAUTHORIZED,
                "sparta: authentication required: put credentials for this proxy in ~/.netrc or set GOAUTH\n"
                    .to_owned(),
            ),
            Refusal::Auth(_) => (
                StatusCode::UNAUTHORIZED,
                "sparta: invalid credentials\n".to_owned(),
            ),
            Refusal::Module(reason) => (StatusCode::FORBIDDEN, format!("sparta: {reason}\n")),
        };
        let mut r = (status, body).into_response();
        let h = r.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        if status == StatusCode::UNAUTHORIZED {
            h.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"sparta\""),
            );
        }
        r
    }
}

impl Access {
    /// The layer, its series registered in `metrics`.
    pub fn new(config: AccessConfig, metrics: &Metrics) -> Self {
        let family = IntCounterVec::new(
            Opts::new(
                "sparta_access_decisions_total",
                "Access decisions by outcome: allowed, denied_address, unauthenticated, bad_credentials, excluded_module.",
            ),
            &["decision"],
        )
        .expect("valid metric");
        metrics
            .registry()
            .register(Box::new(family.clone()))
            .expect("unique metric");
        let c = |l: &str| family.with_label_values(&[l]);
        Access {
            allowed: c("allowed"),
            denied_address: c("denied_address"),
            unauthenticated: c("unauthenticated"),
            bad_credentials: c("bad_credentials"),
            excluded_module: c("excluded_module"),
            config,
        }
    }

    /// Whether nothing is checked (the default): every request passes.
    pub fn is_open(&self) -> bool {
        self.config.net.is_open()
            && self.config.trusted_proxies.is_empty()
            && self.config.rules.is_empty()
            && self.config.auth.is_none()
    }

    /// Decides on one request: its socket peer, headers, and the proxy path
    /// below the mount prefix (no leading `/`; `None` for other paths).
    /// `None` when its credential is not among those verified lately:
    /// [`Access::admit`] checks it then, on a blocking thread.
    pub fn admit_cached(
        &self,
        peer: Option<IpAddr>,
        headers: &HeaderMap,
        proxy_path: Option<&str>,
    ) -> Option<(Caller, Result<(), Refusal>)> {
        let mut caller = self.caller(peer, headers);
        let verdict = self.decide(&mut caller, headers, proxy_path, None)?;
        self.count(&verdict);
        Some((caller, verdict))
    }

    /// [`Access::admit_cached`], checking a credential seen for the first
    /// time (bcrypt takes tens of milliseconds of CPU) off the async threads.
    pub async fn admit(
        &self,
        peer: Option<IpAddr>,
        headers: &HeaderMap,
        proxy_path: Option<&str>,
    ) -> (Caller, Result<(), Refusal>) {
        let mut caller = self.caller(peer, headers);
        let verdict = match self.decide(&mut caller, headers, proxy_path, None) {
            Some(verdict) => verdict,
            None => {
                let checked = self.authenticate_blocking(headers).await;
                self.decide(&mut caller, headers, proxy_path, Some(checked))
                    .unwrap_or(Err(Refusal::Auth(AuthFailure::Rejected)))
            }
        };
        self.count(&verdict);
        (caller, verdict)
    }

    /// The request's credential checked on a blocking thread.
    async fn authenticate_blocking(&self, headers: &HeaderMap) -> Result<Principal, AuthFailure> {
        let Some(auth) = &self.config.auth else {
            return Err(AuthFailure::Rejected);
        };
        let (auth, now) = (auth.clone(), Instant::now());
        let value = headers
            .get(header::AUTHORIZATION)
            .map(|v| v.as_bytes().to_vec());
        tokio::task::spawn_blocking(move || auth.authenticate(value.as_deref(), now))
            .await
            .unwrap_or(Err(AuthFailure::Rejected))
    }

    fn caller(&self, peer: Option<IpAddr>, headers: &HeaderMap) -> Caller {
        Caller {
            client: peer.map(|p| self.client(p, headers)),
            principal: None,
        }
    }

    fn count(&self, verdict: &Result<(), Refusal>) {
        let counter = match verdict {
            Ok(()) => &self.allowed,
            Err(Refusal::Address) => &self.denied_address,
            Err(Refusal::Auth(AuthFailure::Missing)) => &self.unauthenticated,
            Err(Refusal::Auth(_)) => &self.bad_credentials,
            Err(Refusal::Module(_)) => &self.excluded_module,
        };
        counter.inc();
    }

    fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let trusted = &self.config.trusted_proxies;
        if trusted.is_empty() {
            return sparta_access::net::canonical(peer);
        }
        let values = |name: &str| -> Vec<&str> {
            headers
                .get_all(name)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .collect()
        };
        sparta_access::client_addr(
            peer,
            trusted,
            &values("forwarded"),
            &values("x-forwarded-for"),
        )
    }

    /// The verdict, `None` when the credential needs its hash checked and
    /// `checked` (the result of that check) is not given.
    fn decide(
        &self,
        caller: &mut Caller,
        headers: &HeaderMap,
        proxy_path: Option<&str>,
        checked: Option<Result<Principal, AuthFailure>>,
    ) -> Option<Result<(), Refusal>> {
        let c = &self.config;
        if !c.net.is_open() {
            // Without a peer address (an accept loop that gives none) the
            // lists cannot hold: refuse rather than guess.
            match caller.client {
                Some(ip) if c.net.permits(ip) => {}
                _ => return Some(Err(Refusal::Address)),
            }
        }
        if let Some(auth) = &c.auth {
            let result = match checked {
                Some(result) => result,
                None => {
                    let now = Instant::now();
                    for e in auth.refresh(now) {
                        warn!(error = %e, "credential file not reloaded; the previous one stays in force");
                    }
                    let value = headers.get(header::AUTHORIZATION).map(|v| v.as_bytes());
                    match auth.check_cached(value, now) {
                        Check::Done(result) => result,
                        Check::NeedsHash => return None,
                    }
                }
            };
            match result {
                Ok(principal) => caller.principal = Some(principal),
                Err(failure) => return Some(Err(Refusal::Auth(failure))),
            }
        }
        if !c.rules.is_empty()
            && let Some(path) = proxy_path
            && let Ok(request) = ProxyRequest::parse(path)
        {
            let version = match &request {
                ProxyRequest::Info(_, InfoVersion::Canonical(v))
                | ProxyRequest::Mod(_, v)
                | ProxyRequest::Zip(_, v) => Some(v),
                _ => None,
            };
            if let ModuleVerdict::Excluded(reason) = c.rules.decide(request.module(), version) {
                return Some(Err(Refusal::Module(reason)));
            }
        }
        Some(Ok(()))
    }
}
