"""Prometheus metrics of one node, on a registry of its own (several nodes may share a process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.head = Gauge("mps_head_height", "Height of a head", ["kind"], registry=r)
        self.mempool_txs = Gauge("mps_mempool_txs", "Transactions in the mempool", registry=r)
        self.mempool_bytes = Gauge("mps_mempool_bytes", "Bytes in the mempool", registry=r)
        self.block_apply = Histogram(
            "mps_block_apply_seconds",
            "Time to build, apply and commit a block",
            registry=r,
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.block_txs = Counter("mps_block_txs_total", "Transactions sealed in blocks", registry=r)
        self.blobs_pruned = Counter(
            "mps_blobs_pruned_total", "Blobs dropped from the blob store", registry=r
        )
        self.blob_bytes_pruned = Counter(
            "mps_blob_bytes_pruned_total", "Bytes dropped from the blob store", registry=r
        )
        self.rpc_latency = Histogram(
            "mps_rpc_seconds",
            "JSON-RPC latency per method",
            ["method"],
            registry=r,
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5),
        )
        self.rpc_errors = Counter(
            "mps_rpc_errors_total", "JSON-RPC errors per code", ["code"], registry=r
        )
        self.tx_rejected = Counter(
            "mps_tx_rejected_total", "Transactions refused by the mempool", ["reason"], registry=r
        )

        self.fl_events = Counter(
            "mps_fl_events_total",
            "Tasks created, clients joined, evaluations reported, epochs closed",
            ["event"],
            registry=r,
        )

        self.l1_actions = Counter(
            "mps_l1_actions_total",
            "Actions of the L1 services (events read, batches posted, slashes, settlements)",
            ["service", "action"],
            registry=r,
        )
        self.l1_errors = Counter(
            "mps_l1_errors_total",
            "Failed rounds of an L1 service (L1 down, slow)",
            ["service"],
            registry=r,
        )
        self.l1_last_ok = Gauge(
            "mps_l1_last_success_timestamp_seconds",
            "When an L1 service last completed a round (unix time)",
            ["service"],
            registry=r,
        )
        # the same, and each service's last error, as /health reads them
        self.l1_rounds: dict[str, float] = {}
        self.l1_failure: dict[str, str] = {}

    def l1_round_ok(self, service: str, now: float) -> None:
        self.l1_last_ok.labels(service).set(now)
        self.l1_rounds[service] = now
        self.l1_failure.pop(service, None)

    def l1_round_failed(self, service: str, error: str) -> None:
        self.l1_errors.labels(service).inc()
        self.l1_failure[service] = error

    def render(self) -> bytes:
        return generate_latest(self.registry)
