"""Data curation: the report's eight filters (plus `pair` for editing data) as a resumable pipeline.

    from qwen_image2.data.curation import curate, rethreshold
    curate(["images/"], "out/", stage="s1-256p")          # OUT/manifest.parquet, report.json, report.png
    rethreshold("out/manifest.parquet", stage="s3-512p")  # new decisions from stored scores, no decode

Each filter is a plain callable class (`BrokenFilter`, `ResolutionFilter`, ...) mapping a batch
`dict[str, np.ndarray]` to the same batch with score and keep columns added; none drops rows.
"""

from qwen_image2.data.curation.config import DEFAULT_FILTERS, FILTER_ORDER, RunSettings, load_stages
from qwen_image2.data.curation.pipeline import CurationResult, curate, rethreshold

__all__ = [
    "DEFAULT_FILTERS",
    "FILTER_ORDER",
    "CurationResult",
    "RunSettings",
    "curate",
    "load_stages",
    "rethreshold",
]
