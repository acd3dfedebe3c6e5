//! End-to-end tests: the real `sparta` binary in front of the fixture
//! upstream (or the machine's own Go module proxy), driven by the real `go`
//! command and by raw HTTP. Build the binary first: `cargo build -p sparta`.

mod access;
mod access_nginx;
mod aws_env;
mod cached_only;
mod client_faults;
mod counting;
mod direct;
mod direct_routing;
mod download;
mod faults;
mod gocmd;
mod hostile;
mod http;
mod live;
mod mount;
mod request_ids;
mod storage_init;
mod version;
