"""The PostgreSQL backend for read replicas: a read the replica cannot serve runs on the primary."""
