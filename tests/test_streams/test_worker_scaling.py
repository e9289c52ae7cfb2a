"""Two workers share the partitions of one namespace and still reach exactly the model's carts."""

from __future__ import annotations

import time
from collections.abc import Callable

from streams_harness import Pipeline, Worker, carts_by_customer, random_cart_traffic


def test_two_workers_sharing_partitions_reach_the_model(pipeline_factory: Callable[..., Pipeline]) -> None:
    events, model = random_cart_traffic(seed=7, count=2000, now=int(time.time() * 1000))
    pipeline = pipeline_factory(start=False, extra_env={"OMNICHANNEL_BATCH_MAX": "50"})
    second = Worker(dict(pipeline.worker.env), pipeline.worker.log.with_name("second-worker.log"))
    pipeline.worker.start()
    second.start()
    try:
        pipeline.publish(events)
        pipeline.wait_for(lambda: carts_by_customer(pipeline) == model, timeout=180, what="the model's carts")
        assert second.proc is not None and second.proc.poll() is None, "the second worker died"
    finally:
        second.stop()
