//! Registry credentials for `podstart run`, from the two places Kubernetes
//! users keep them: Secret documents of type `kubernetes.io/dockerconfigjson`
//! (`.dockerconfigjson`) or `kubernetes.io/dockercfg` (`.dockercfg`) in the
//! manifest — `data` base64 or `stringData` — and Docker `config.json`
//! files (`--registry-config`). Entries keep their order; the service
//! applies the keyring's order.
//!
//! Errors name the Secret or file and the entry's server, never a value.
use std::collections::BTreeMap;

use base64::Engine;
use serde::Deserialize;

use crate::cli::yaml::Value;

use crate::proto::v1::RegistryCredential;

#[derive(Debug, thiserror::Error)]
pub enum PullSecretError {
    #[error("Secret {name:?}: type {kind:?} holds no registry credentials")]
    WrongType { name: String, kind: String },
    #[error("Secret {name:?}: key {key:?} is missing")]
    MissingKey { name: String, key: &'static str },
    #[error("Secret {name:?}: key {key:?} is not valid base64")]
    Base64 { name: String, key: &'static str },
    #[error("{origin}: not a Docker config ({detail})")]
    Json { origin: String, detail: String },
}

#[derive(Default, Deserialize)]
struct AuthEntry {
    #[serde(default)]
    auth: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default, rename = "identitytoken")]
    identity_token: String,
    #[serde(default, rename = "registrytoken")]
    registry_token: String,
}

/// Says which fields an entry sets, never their values.
impl std::fmt::Debug for AuthEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let set = |v: &String| {
            if v.is_empty() {
                "<empty>"
            } else {
                "<redacted>"
            }
        };
        f.debug_struct("AuthEntry")
            .field("auth", &set(&self.auth))
            .field("username", &set(&self.username))
            .field("password", &set(&self.password))
            .field("identity_token", &set(&self.identity_token))
            .field("registry_token", &set(&self.registry_token))
            .finish()
    }
}

#[derive(Debug, Deserialize)]
struct DockerConfig {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
}

fn credential(server: String, e: AuthEntry) -> RegistryCredential {
    RegistryCredential {
        server,
        username: e.username,
        password: e.password,
        auth: e.auth,
        identity_token: e.identity_token,
        registry_token: e.registry_token,
    }
}

/// A Docker `config.json` (`{"auths": {server: {...}}}`).
pub fn from_docker_config(
    text: &[u8],
    origin: &str,
) -> Result<Vec<RegistryCredential>, PullSecretError> {
    let config: DockerConfig = serde_json::from_slice(text).map_err(|e| PullSecretError::Json {
        origin: origin.to_string(),
        // serde's message may quote input; keep only where it failed.
        detail: format!("line {} column {}", e.line(), e.column()),
    })?;
    Ok(config
        .auths
        .into_iter()
        .map(|(server, e)| credential(server, e))
        .collect())
}

/// The legacy `.dockercfg` format: `{server: {...}}`.
fn from_dockercfg(text: &[u8], origin: &str) -> Result<Vec<RegistryCredential>, PullSecretError> {
    let entries: BTreeMap<String, AuthEntry> =
        serde_json::from_slice(text).map_err(|e| PullSecretError::Json {
            origin: origin.to_string(),
            detail: format!("line {} column {}", e.line(), e.column()),
        })?;
    Ok(entries
        .into_iter()
        .map(|(server, e)| credential(server, e))
        .collect())
}

/// The name of a Secret document, if it is one.
pub fn secret_name(doc: &Value) -> Option<String> {
    (doc.get("kind")?.as_str()? == "Secret")
        .then(|| {
            doc.get("metadata")?
                .get("name")?
                .as_str()
                .map(str::to_string)
        })
        .flatten()
}

/// The credentials a Secret document holds.
pub fn from_secret(doc: &Value) -> Result<Vec<RegistryCredential>, PullSecretError> {
    let name = secret_name(doc).unwrap_or_default();
    let kind = doc
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("Opaque")
        .to_string();
    let (key, legacy) = match kind.as_str() {
        "kubernetes.io/dockerconfigjson" => (".dockerconfigjson", false),
        "kubernetes.io/dockercfg" => (".dockercfg", true),
        _ => return Err(PullSecretError::WrongType { name, kind }),
    };
    let plain = doc
        .get("stringData")
        .and_then(|d| d.get(key))
        .and_then(Value::as_str)
        .map(|s| s.as_bytes().to_vec());
    let bytes = match plain {
        Some(b) => b,
        None => {
            let encoded = doc
                .get("data")
                .and_then(|d| d.get(key))
                .and_then(Value::as_str)
                .ok_or_else(|| PullSecretError::MissingKey {
                    name: name.clone(),
                    key,
                })?;
            let compact: String = encoded.split_whitespace().collect();
            base64::engine::general_purpose::STANDARD
                .decode(compact)
                .map_err(|_| PullSecretError::Base64 {
                    name: name.clone(),
                    key,
                })?
        }
    };
    let origin = format!("Secret {name:?}");
    if legacy {
        from_dockercfg(&bytes, &origin)
    } else {
        from_docker_config(&bytes, &origin)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn document(text: &str) -> Value {
        let mut documents = crate::cli::yaml::documents(text).unwrap();
        assert_eq!(documents.len(), 1);
        documents.remove(0)
    }

    #[test]
    fn auth_entry_debug_hides_values() {
        let config: DockerConfig = serde_json::from_slice(
            br#"{"auths": {"r.example": {"username": "u", "password": "hunter2", "auth": "dTpodW50ZXIy"}}}"#,
        )
        .unwrap();
        let printed = format!("{config:?}");
        assert!(printed.contains("r.example"), "{printed}");
        for secret in ["hunter2", "dTpodW50ZXIy", "\"u\""] {
            assert!(!printed.contains(secret), "{printed}");
        }
    }

    #[test]
    fn docker_config_entries() {
        let creds = from_docker_config(
            br#"{"auths": {"127.0.0.1:5402": {"auth": "bGFidXNlcjpsYWJwYXNz"},
                 "reg.example.com": {"username": "u", "password": "p", "identitytoken": "t"}}}"#,
            "f",
        )
        .unwrap();
        assert_eq!(creds.len(), 2);
        assert_eq!(creds[0].server, "127.0.0.1:5402");
        assert_eq!(creds[0].auth, "bGFidXNlcjpsYWJwYXNz");
        assert_eq!(creds[1].identity_token, "t");
        let err = from_docker_config(b"{\"auths\": {\"x\": {\"password\": 5}}}", "f").unwrap_err();
        assert!(!err.to_string().contains('5'), "{err}");
    }

    #[test]
    fn secrets_base64_string_data_and_legacy() {
        let doc = document(
            "kind: Secret\nmetadata: {name: s}\ntype: kubernetes.io/dockerconfigjson\n\
             data: {.dockerconfigjson: eyJhdXRocyI6eyJyIjp7InVzZXJuYW1lIjoidSIsInBhc3N3b3JkIjoicCJ9fX0=}\n",
        );
        assert_eq!(secret_name(&doc).as_deref(), Some("s"));
        let c = from_secret(&doc).unwrap();
        assert_eq!((c[0].server.as_str(), c[0].username.as_str()), ("r", "u"));
        let doc = document(
            "kind: Secret\nmetadata: {name: s}\ntype: kubernetes.io/dockercfg\n\
             stringData: {.dockercfg: '{\"r\": {\"auth\": \"dTpw\"}}'}\n",
        );
        assert_eq!(from_secret(&doc).unwrap()[0].auth, "dTpw");
        let opaque = document("kind: Secret\nmetadata: {name: o}\ntype: Opaque\n");
        assert!(matches!(
            from_secret(&opaque),
            Err(PullSecretError::WrongType { .. })
        ));
    }
}
