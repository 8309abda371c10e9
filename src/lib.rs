//! podstart: a node agent that runs the kubelet's pod start flow against the
//! node's CRI runtime and streams every step to the caller.
#![forbid(unsafe_code)]

pub mod admission;
pub mod api;
pub mod authz;
pub mod backoff;
pub mod cli;
pub mod config;
pub mod cri;
pub mod duration;
pub mod endpoint;
pub mod images;
pub mod listen;
pub mod node;
pub mod paths;
pub mod pleg;
pub mod quantity;
pub mod server;
pub mod sim;
pub mod spec;
pub mod start;
pub mod state;
pub mod telemetry;
pub mod volumes;

pub mod proto {
    //! podstart's own API, generated from proto/podstart/v1.
    pub mod v1 {
        tonic::include_proto!("podstart.v1");
        /// Encoded file descriptor set, for gRPC reflection.
        pub const FILE_DESCRIPTOR_SET: &[u8] =
            tonic::include_file_descriptor_set!("podstart_v1_descriptor");

        /// Names the server and which secrets are set, never their values.
        impl std::fmt::Debug for RegistryCredential {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                let set = |s: &str| if s.is_empty() { "<empty>" } else { "<set>" };
                f.debug_struct("RegistryCredential")
                    .field("server", &self.server)
                    .field("username", &self.username)
                    .field("password", &set(&self.password))
                    .field("auth", &set(&self.auth))
                    .field("identity_token", &set(&self.identity_token))
                    .field("registry_token", &set(&self.registry_token))
                    .finish()
            }
        }

        #[cfg(test)]
        mod tests {
            use super::*;

            #[test]
            fn credentials_never_print_their_secrets() {
                let c = RegistryCredential {
                    server: "registry.test".into(),
                    username: "me".into(),
                    password: "hunter2".into(),
                    auth: "bWU6aHVudGVyMg==".into(),
                    identity_token: "id-tok".into(),
                    registry_token: String::new(),
                };
                let req = StartPodRequest {
                    credentials: vec![c],
                    ..Default::default()
                };
                let shown = format!("{req:?}");
                for secret in ["hunter2", "bWU6aHVudGVyMg==", "id-tok"] {
                    assert!(!shown.contains(secret), "{shown}");
                }
                assert!(
                    shown.contains("registry.test") && shown.contains("<set>"),
                    "{shown}"
                );
                assert!(shown.contains("registry_token: \"<empty>\""), "{shown}");
            }
        }
    }
}
