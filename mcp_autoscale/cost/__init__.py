"""Cost: the price catalogue (a data file) and the $ maths the planner and the ``estimate_cost`` tool use."""

from mcp_autoscale.cost.catalogue import GpuModel, InstanceType, PriceCatalogue, load_catalogue
from mcp_autoscale.cost.estimate import (
    CostEstimate,
    NodePoolCost,
    PoolCost,
    WhatIf,
    WhatIfResult,
    action_cost_delta,
    cost_per_million_tokens,
    estimate,
    node_pool_free_gpus,
    node_price_per_hour,
    pool_cost_per_hour,
    pool_gpu_hour,
    split_token_prices,
)

__all__ = [
    "CostEstimate",
    "GpuModel",
    "InstanceType",
    "NodePoolCost",
    "PoolCost",
    "PriceCatalogue",
    "WhatIf",
    "WhatIfResult",
    "action_cost_delta",
    "cost_per_million_tokens",
    "estimate",
    "load_catalogue",
    "node_pool_free_gpus",
    "node_price_per_hour",
    "pool_cost_per_hour",
    "pool_gpu_hour",
    "split_token_prices",
]
