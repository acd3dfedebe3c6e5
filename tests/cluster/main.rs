//! Cluster tests: several replicas, one S3 bucket, faults.
