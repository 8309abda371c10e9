//! podstart: a node agent that runs the kubelet's pod start flow against the
//! node's CRI runtime and streams every step to the caller.
#![forbid(unsafe_code)]

pub mod api;
pub mod backoff;
pub mod cli;
pub mod config;
pub mod cri;
pub mod duration;
pub mod endpoint;
pub mod images;
pub mod paths;
pub mod server;
pub mod sim;
pub mod spec;
pub mod start;
pub mod state;
pub mod telemetry;

pub mod proto {
    //! podstart's own API, generated from proto/podstart/v1.
    pub mod v1 {
        tonic::include_proto!("podstart.v1");
        /// Encoded file descriptor set, for gRPC reflection.
        pub const FILE_DESCRIPTOR_SET: &[u8] =
            tonic::include_file_descriptor_set!("podstart_v1_descriptor");
    }
}
