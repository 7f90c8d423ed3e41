//! Wires config, discovery, tailers, pipelines, clients and positions.
