//! Cluster tests: several replicas, one S3 bucket, faults. They need the S3
//! test server (`SPARTA_TEST_S3_*`, see scripts/s3-server.sh) and a built
//! binary (`cargo build -p sparta`). They run one at a time: one of them
//! stops the shared S3 server.

mod answer_first;
mod disk_tier;
mod faults;
mod freshness;
mod go_client;
mod replicas;
mod shutdown;
mod support;
