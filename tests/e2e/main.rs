//! End-to-end tests: the real `sparta` binary in front of the fixture
//! upstream (or the machine's own Go module proxy), driven by the real `go`
//! command and by raw HTTP. Build the binary first: `cargo build -p sparta`.

mod access;
mod access_nginx;
mod aws_env;
mod bundle;
mod cached_only;
mod catalog;
mod client_faults;
mod counting;
mod direct;
mod direct_latest;
mod direct_routing;
mod direct_shallow;
mod direct_ssh;
mod download;
mod download_modes;
mod fault_matrix;
mod faults;
mod gocmd;
mod hostile;
mod http;
mod limits;
mod live;
mod mount;
mod offline;
mod presigned;
mod request_ids;
mod soak;
mod storage_init;
mod traces;
mod ui;
mod version;
mod warm;
