//! What an `.info` answer carries.

use bytes::Bytes;
use serde::Serialize;
use sparta_core::Version;

/// Result of resolving a version or query: what an .info answer carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevInfo {
    /// Canonical, e.g. v1.2.3 or v0.0.0-20240101000000-abcdef123456.
    pub version: Version,
    /// RFC 3339, UTC, e.g. 2024-01-01T00:00:00Z.
    pub time: String,
    /// Where it came from, as the go command's .info Origin.
    pub origin: Option<Origin>,
}

/// The go command's `Origin` of an .info file (the fields a git source fills).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Origin {
    #[serde(rename = "VCS")]
    pub vcs: String,
    #[serde(rename = "URL")]
    pub url: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub subdir: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub hash: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub r#ref: String,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct InfoJson<'a> {
    version: &'a str,
    time: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    origin: Option<&'a Origin>,
}

impl RevInfo {
    /// The .info body, as the go command's proxy writes it.
    pub fn to_json(&self) -> Bytes {
        let body = InfoJson {
            version: self.version.as_str(),
            time: &self.time,
            origin: self.origin.as_ref(),
        };
        // Serializing plain strings cannot fail.
        Bytes::from(serde_json::to_vec(&body).expect("info json"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_json_has_the_go_field_names() {
        let info = RevInfo {
            version: Version::parse("v1.2.3").unwrap(),
            time: "2024-01-01T00:00:00Z".into(),
            origin: Some(Origin {
                vcs: "git".into(),
                url: "https://example.test/r".into(),
                subdir: String::new(),
                hash: "abc".into(),
                r#ref: "refs/tags/v1.2.3".into(),
            }),
        };
        assert_eq!(
            std::str::from_utf8(&info.to_json()).unwrap(),
            r#"{"Version":"v1.2.3","Time":"2024-01-01T00:00:00Z","Origin":{"VCS":"git","URL":"https://example.test/r","Hash":"abc","Ref":"refs/tags/v1.2.3"}}"#
        );
    }
}
