//! S3 endpoint and region as the AWS CLI finds them: `AWS_ENDPOINT_URL_S3`,
//! `AWS_ENDPOINT_URL`, the shared config file's `services` section and
//! `endpoint_url` of the profile (`AWS_PROFILE`); aws-config reads them.

use aws_config::SdkConfig;
use aws_config::meta::region::ProvideRegion;
use aws_types::service_config::ServiceConfigKey;

/// Where the endpoint came from, for the start-up log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub url: String,
    /// `--s3-endpoint` or `aws` (environment or shared config file).
    pub source: &'static str,
}

/// The region named by the settings, the environment or the profile,
/// without asking instance metadata.
pub(crate) async fn configured_region(explicit: Option<&str>) -> Option<String> {
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    if let Some(r) = explicit.map(str::to_owned).or_else(|| env("AWS_REGION")) {
        return Some(r);
    }
    if let Some(r) = env("AWS_DEFAULT_REGION") {
        return Some(r);
    }
    aws_config::profile::ProfileFileRegionProvider::new()
        .region()
        .await
        .map(|r| r.to_string())
}

/// The S3 endpoint: `--s3-endpoint`, else the AWS conventions in the CLI's
/// order (service-specific variable, global variable, the profile's
/// `services` section, the profile's `endpoint_url`).
pub(crate) fn endpoint(explicit: Option<&str>, sdk: &SdkConfig) -> Option<Endpoint> {
    if let Some(url) = explicit {
        return Some(Endpoint {
            url: url.to_owned(),
            source: "--s3-endpoint",
        });
    }
    let ignored = std::env::var("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS")
        .is_ok_and(|v| v.eq_ignore_ascii_case("true"));
    if ignored {
        return None;
    }
    let key = ServiceConfigKey::builder()
        .service_id("S3")
        .profile("endpoint_url")
        .env("AWS_ENDPOINT_URL")
        .build()
        .ok()?;
    let url = sdk
        .service_config()
        .and_then(|c| c.load_config(key))
        .or_else(|| sdk.endpoint_url().map(str::to_owned))?;
    Some(Endpoint { url, source: "aws" })
}

/// Local S3-compatible servers are reached by IP address, where a
/// virtual-hosted bucket name cannot resolve; the AWS SDKs' endpoint rules
/// use path-style requests there too.
pub(crate) fn is_ip_endpoint(url: &str) -> bool {
    url::Url::parse(url)
        .ok()
        .and_then(|u| u.host().map(|h| !matches!(h, url::Host::Domain(_))))
        .unwrap_or(false)
}
