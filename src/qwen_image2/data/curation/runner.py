"""Runs shards through `ShardCurator`s: on Ray Data (a local instance by default, a cluster with
`ray_address`), or in this process when `workers == 0`. The only module that imports Ray — its API has
churned (`concurrency` vs `compute`), so it is confined here.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from qwen_image2.data.curation.sources import Shard
from qwen_image2.data.curation.worker import ShardCurator

OnShardDone = Callable[[str, int, float], None]


def run_shards(
    shards: list[Shard],
    settings_json: str,
    parts_dir: str,
    workers: int,
    batch_size: int,
    on_done: OnShardDone,
    ray_address: str | None = None,
) -> int:
    """Process `shards`, calling `on_done(shard_id, rows, seconds)` as each finishes; returns the worker
    count used. Each worker is one actor holding its own filters (models load once per actor)."""
    if not shards:
        return workers
    if workers == 0 and ray_address is None:
        curator = ShardCurator(settings_json, parts_dir, batch_size)
        for shard in shards:
            result = curator({"shard": [shard.to_json()]})
            on_done(str(result["shard"][0]), int(result["rows"][0]), float(result["seconds"][0]))
        return 0
    return _run_on_ray(shards, settings_json, parts_dir, workers, batch_size, on_done, ray_address)


def _run_on_ray(shards, settings_json, parts_dir, workers, batch_size, on_done, ray_address) -> int:
    import ray

    started_here = not ray.is_initialized()
    if started_here:
        ray.init(
            address=ray_address or "local",  # never attach to a cluster that was not asked for
            num_cpus=None if ray_address else workers,
            include_dashboard=False,
            log_to_driver=True,
            logging_level="WARNING",
        )
    try:
        if not workers:
            workers = max(1, int(ray.cluster_resources().get("CPU", 1)))
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False  # the caller draws one bar for the whole run
        context.verbose_stats_logs = False
        dataset = ray.data.from_items(
            [{"shard": s.to_json()} for s in shards], override_num_blocks=len(shards)
        )
        dataset = dataset.map_batches(
            ShardCurator,
            fn_constructor_kwargs={
                "settings_json": settings_json,
                "parts_dir": parts_dir,
                "batch_size": batch_size,
            },
            batch_size=1,
            compute=ray.data.ActorPoolStrategy(size=min(workers, len(shards))),
            num_cpus=1,
        )
        for row in dataset.iter_rows():
            on_done(str(row["shard"]), int(row["rows"]), float(row["seconds"]))
    finally:
        if started_here:
            ray.shutdown()
            sys.stderr.flush()
    return workers
