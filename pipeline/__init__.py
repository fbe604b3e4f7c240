"""pipeline: model index, pose sampling, HDF5 shards, the parallel runner and the trainer."""
