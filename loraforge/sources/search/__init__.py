"""Image-search sources: providers registered by name, one shared polite client, provenance per picture.

find_candidates / run_search / add_candidates  (runner)   the use-cases every client calls
SearchRequest, ProviderOutcome, SearchOutcome  (runner)   what is asked, what came of it
provider_status                                (registry) which providers are configured
"""

from loraforge.sources.search.base import Candidate, Rating
from loraforge.sources.search.downloader import download_candidates
from loraforge.sources.search.registry import get_provider, provider_names, provider_status
from loraforge.sources.search.request import ProviderOutcome, SearchOutcome, SearchRequest
from loraforge.sources.search.runner import add_candidates, find_candidates, run_search, sync_saved_searches

__all__ = [
    "Candidate",
    "ProviderOutcome",
    "Rating",
    "SearchOutcome",
    "SearchRequest",
    "add_candidates",
    "download_candidates",
    "find_candidates",
    "get_provider",
    "provider_names",
    "provider_status",
    "run_search",
    "sync_saved_searches",
]
