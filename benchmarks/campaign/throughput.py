"""How fast the round step's scoring runs on the pool, next to a bare forward pass (benchmarks/scoring.py)."""
from __future__ import annotations

from benchmarks.campaign.base_model import model_from_state
from benchmarks.campaign.config import CampaignConfig
from benchmarks.campaign.data import CampaignData


def scoring_throughput(config: CampaignConfig, data: CampaignData, state: dict, repeats: int = 3) -> dict:
    """Images/s of score_pool vs a bare batched forward pass on the same in-memory pool images."""
    import statistics

    from benchmarks.scoring import measure
    from learning.data import Sample

    model = model_from_state(config, data.num_classes, state)
    samples = [Sample(image=data.pool_images[k], key=k) for k in data.pool_keys]
    runs = measure(model, samples, batch_size=config.batch_size, size=config.size, repeats=repeats)
    n = len(samples)

    def rate(name: str) -> float:
        return n / statistics.median(runs[name]["wall"])

    return {"images": n, "repeats": repeats, "bare": rate("bare forward pass"), "score_pool": rate("score_pool, entropy"),
            "score_pool_tta": rate("score_pool, entropy + flip TTA"), "cached": rate("score_pool, from the on-disk cache"),
            "cpu_ratio": statistics.median(runs["bare forward pass"]["cpu"])
            / statistics.median(runs["score_pool, entropy"]["cpu"])}
