"""The job runner: config, dataset, ops, executor and resource-aware partitioning."""
