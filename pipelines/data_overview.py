"""Ray Data job: per source and model, how often each model's answer is right.

It reads the outcome table a `data build` wrote, so it runs the same on the embedded local Ray and
on a cluster that shares the build's storage.
"""

from __future__ import annotations

from pathlib import Path


def model_quality(data_dir: str | Path) -> list[dict]:
    """Rows {source, model, n, mean_score} over every published outcome, via Ray Data."""
    import ray.data
    from ray.data.aggregate import Count, Mean
    from ray.data.expressions import col

    ray.data.DataContext.get_current().enable_progress_bars = False

    ds = ray.data.read_parquet(str(Path(data_dir).resolve() / "outcomes"))
    ds = ds.select_columns(["source", "model", "score"])
    ds = ds.filter(expr=col("score").is_not_null())
    grouped = ds.groupby(["source", "model"], num_partitions=2).aggregate(
        Count(alias_name="n"), Mean("score", alias_name="mean_score")
    )
    rows = sorted(grouped.take_all(), key=lambda r: (r["source"], -r["mean_score"]))
    return [{**r, "n": int(r["n"]), "mean_score": float(r["mean_score"])} for r in rows]
