"""The object store (S3/MinIO or a local directory), snapshot streams and job artifacts."""
